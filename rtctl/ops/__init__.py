"""Operations on a deployment, built on the protocol library: ``initialize`` (rtctl init),
``switch``, ``clientconfig``, ``publish`` (emit), ``listen``, ``doctor``, ``smoke`` (+ ``junit``).
Each returns plain data or raises the typed errors of ``rtctl.errors``; the CLI renders."""
