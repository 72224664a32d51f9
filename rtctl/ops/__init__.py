"""Operations built on the Pusher-protocol library: what rtctl's commands do, usable as a library."""
