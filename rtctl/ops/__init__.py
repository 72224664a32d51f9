"""Operations on a deployment, built on the protocol library: ``initialize`` (rtctl init),
``switch``, ``clientconfig``, ``publish`` (emit), ``listen``, ``doctor``, ``smoke`` (+ ``junit``),
and webhooks: ``webhook_receiver``, ``webhook_listen``, ``webhook_sender``, ``webhook_records``,
``doctor_webhooks``, ``smoke_webhooks``.
Each returns plain data or raises the typed errors of ``rtctl.errors``; the CLI renders."""
