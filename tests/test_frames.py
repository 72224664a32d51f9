"""FrameSplitter at the byte level: what a server may legally send, split any way TCP splits it."""

from __future__ import annotations

import os

import pytest

from rtctl.protocol.frames import CLOSE, PING, TEXT, FrameSplitter


def frame(opcode: int, payload: bytes, fin: bool = True, mask: bytes | None = None) -> bytes:
    """One RFC 6455 frame, built independently of the code under test."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    mask_bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 1 << 16:
        head += bytes([mask_bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([mask_bit | 127]) + n.to_bytes(8, "big")
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


def split_all(stream: bytes, step: int | None = None) -> list[tuple[int, bytes]]:
    """Feed ``stream`` in chunks of ``step`` bytes (all at once if None) and collect everything."""
    splitter = FrameSplitter()
    out: list[tuple[int, bytes]] = []
    chunks = (
        [stream] if step is None else [stream[i : i + step] for i in range(0, len(stream), step)]
    )
    for chunk in chunks:
        splitter.feed(chunk)
        while (item := splitter.next()) is not None:
            out.append(item)
    return out


def test_small_text_frame() -> None:
    assert split_all(frame(1, b'{"event":"a"}')) == [(TEXT, b'{"event":"a"}')]


@pytest.mark.parametrize("size", [125, 126, 127, 65535, 65536, 200_000])
def test_length_encodings_at_their_boundaries(size: int) -> None:
    payload = os.urandom(size)
    assert split_all(frame(1, payload)) == [(TEXT, payload)]


@pytest.mark.parametrize("step", [1, 2, 3, 7, 1000])
def test_any_tcp_split_gives_the_same_messages(step: int) -> None:
    payloads = [b"x" * 10, b"y" * 300, b"z" * 70_000]
    stream = b"".join(frame(1, p) for p in payloads)
    assert split_all(stream, step) == [(TEXT, p) for p in payloads]


def test_fragmented_message_is_reassembled() -> None:
    stream = frame(1, b'{"ev', fin=False) + frame(0, b'ent":', fin=False) + frame(0, b'"a"}')
    assert split_all(stream) == [(TEXT, b'{"event":"a"}')]


def test_control_frames_between_fragments_come_out_first() -> None:
    stream = (
        frame(1, b"hel", fin=False)
        + frame(PING, b"p1")
        + frame(0, b"lo ", fin=False)
        + frame(10, b"pong-ignored")
        + frame(0, b"world")
    )
    assert split_all(stream, step=2) == [(PING, b"p1"), (TEXT, b"hello world")]


def test_close_frame_is_handed_over_with_its_payload() -> None:
    payload = (4200).to_bytes(2, "big") + b"Server closed"
    assert split_all(frame(1, b"last") + frame(CLOSE, payload)) == [
        (TEXT, b"last"),
        (CLOSE, payload),
    ]


def test_binary_frames_count_as_text() -> None:
    assert split_all(frame(2, b'{"a":1}')) == [(TEXT, b'{"a":1}')]


def test_masked_server_frames_are_tolerated() -> None:
    assert split_all(frame(1, b"masked data", mask=b"\x01\x02\x03\x04")) == [(TEXT, b"masked data")]


def test_incomplete_header_and_payload_wait_for_more() -> None:
    splitter = FrameSplitter()
    whole = frame(1, b"a" * 70_000)
    splitter.feed(whole[:1])
    assert splitter.next() is None and not splitter.has_frame()
    splitter.feed(whole[1:5])  # 64-bit length header still incomplete
    assert splitter.next() is None
    splitter.feed(whole[5:-1])
    assert splitter.next() is None and not splitter.has_frame()
    splitter.feed(whole[-1:])
    assert splitter.has_frame()
    assert splitter.next() == (TEXT, b"a" * 70_000)


def test_bytes_read_past_the_handshake_start_the_buffer() -> None:
    splitter = FrameSplitter(frame(1, b"early"))
    assert splitter.next() == (TEXT, b"early")
