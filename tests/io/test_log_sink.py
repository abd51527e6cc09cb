"""The log sink: writing never blocks or raises, whatever the reader does; losses are counted."""

from __future__ import annotations

import os
import time

import orjson

from bridge_worker.log_sink import LogSink, SinkText


def test_an_unread_pipe_costs_lines_not_time_and_the_loss_is_reported() -> None:
    read_end, write_end = os.pipe()
    sink = LogSink(write_end, max_pending_bytes=1 << 16)
    line = b'{"event":"x","pad":"' + b"y" * 1000 + b'"}\n'
    started = time.monotonic()
    for _ in range(2000):  # 2 MB into a 64 KiB pipe and a 64 KiB queue
        sink.write(line)
    assert time.monotonic() - started < 1.0
    assert sink.dropped_total > 0
    dropped = sink.dropped_total
    os.set_blocking(read_end, False)
    received = b""
    deadline = time.monotonic() + 10
    while b"log_lines_dropped" not in received and time.monotonic() < deadline:
        try:
            received += os.read(read_end, 1 << 16)
        except BlockingIOError:
            sink.write(line)  # the report rides with the next line that gets through
            time.sleep(0.01)
    (report,) = [orjson.loads(r) for r in received.splitlines() if b"log_lines_dropped" in r]
    assert report["count"] >= dropped and report["level"] == "warning"
    os.close(read_end)
    os.close(write_end)


def test_a_closed_reader_never_raises() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    sink = LogSink(write_end)
    stream = SinkText(sink)
    for _ in range(100):
        stream.write("a line\n")
        stream.buffer.write(b"bytes\n")
        stream.flush()
    assert sink.drain(2.0)
    assert sink.dropped_total == 200
    os.close(write_end)


def test_lines_arrive_whole_and_in_order() -> None:
    read_end, write_end = os.pipe()
    sink = LogSink(write_end)
    for i in range(100):
        sink.write(b"%d\n" % i)
    assert sink.drain(5.0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        assert reader.read().splitlines() == [b"%d" % i for i in range(100)]
