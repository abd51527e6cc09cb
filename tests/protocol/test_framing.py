"""Frame decoders without any process: where frames begin and end, and oversize frames."""

from __future__ import annotations

from bridge_worker.framing import (
    LineDecoder,
    Oversize,
    Packet4Decoder,
    encode_line,
    encode_packet4,
)


def feed_all(decoder: LineDecoder | Packet4Decoder, chunks: list[bytes]) -> list[object]:
    frames: list[object] = []
    for chunk in chunks:
        frames += decoder.feed(chunk)
    return frames + decoder.eof()


def test_lines_split_anywhere_give_the_same_frames() -> None:
    stream = b'{"a":1}\n{"b":2}\n{"c":3}\n'
    whole = feed_all(LineDecoder(), [stream])
    assert whole == [b'{"a":1}', b'{"b":2}', b'{"c":3}']
    for cut in range(1, len(stream)):
        assert feed_all(LineDecoder(), [stream[:cut], stream[cut:]]) == whole
    assert feed_all(LineDecoder(), [bytes([b]) for b in stream]) == whole


def test_blank_lines_are_skipped_and_a_last_line_without_newline_counts() -> None:
    assert feed_all(LineDecoder(), [b"\n  \n\r\n1\n\n2"]) == [b"1", b"2"]


def test_oversize_line_is_reported_once_and_the_next_frame_survives() -> None:
    decoder = LineDecoder(max_frame_bytes=10)
    frames = decoder.feed(b"x" * 8)
    assert frames == []
    frames = decoder.feed(b"x" * 8)  # over the limit before its newline arrived: reported now
    assert frames == [Oversize(10)]
    assert decoder.pending == 0  # its bytes are not kept
    frames = decoder.feed(b"x" * 100 + b"\nok\n")
    assert frames == [b"ok"]


def test_oversize_line_within_one_chunk() -> None:
    decoder = LineDecoder(max_frame_bytes=4)
    assert decoder.feed(b"12345\n1234\n") == [Oversize(4), b"1234"]


def test_packet4_frames_split_anywhere() -> None:
    stream = encode_packet4(b'{"a":1}') + encode_packet4(b"") + encode_packet4(b"[1,2]")
    expected = [b'{"a":1}', b"", b"[1,2]"]
    for cut in range(len(stream) + 1):
        assert feed_all(Packet4Decoder(), [stream[:cut], stream[cut:]]) == expected


def test_packet4_oversize_is_skipped_across_chunks() -> None:
    decoder = Packet4Decoder(max_frame_bytes=8)
    big = encode_packet4(b"y" * 20)
    assert decoder.feed(big[:10]) == [Oversize(8)]
    assert decoder.feed(big[10:] + encode_packet4(b"ok")) == [b"ok"]


def test_packet4_truncated_frame_is_pending_at_eof() -> None:
    decoder = Packet4Decoder()
    assert decoder.feed(encode_packet4(b"hello")[:6]) == []
    assert decoder.pending == 6  # header and the two bytes that came
    assert decoder.eof() == []


def test_encoders() -> None:
    assert encode_line(b"{}") == b"{}\n"
    assert encode_packet4(b"{}") == b"\x00\x00\x00\x02{}"
