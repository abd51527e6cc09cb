"""Framing: where one frame ends and the next begins. Knows nothing of JSON or JSON-RPC.

Sans-IO, in the manner of h11: a decoder is fed whatever bytes arrived and returns the complete
frames in them; it never reads a file descriptor itself, so it is tested without a process and the
I/O loop stays a few lines long.

- ``line``: a frame is one line ending in ``\\n``; blank lines are skipped (people press enter), a
  last line without ``\\n`` at end of input still counts.
- ``packet4``: a 4-byte big-endian length, then that many bytes (Erlang's ``{:packet, 4}``).

A frame longer than the limit becomes one :class:`Oversize` marker; its bytes are dropped as they
arrive (memory stays bounded), and decoding goes on with the next frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

Framing = Literal["line", "packet4"]

DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Oversize:
    """Stands where a frame over the limit was; its content is gone."""

    limit: int


Frame = bytes | Oversize


class FrameDecoder(Protocol):
    def feed(self, data: bytes) -> list[Frame]: ...

    def eof(self) -> list[Frame]: ...

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back (non-zero at EOF means a truncated frame)."""
        ...


class LineDecoder:
    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self._max = max_frame_bytes
        self._partial = bytearray()
        self._discarding = False

    @property
    def pending(self) -> int:
        return len(self._partial)

    def feed(self, data: bytes) -> list[Frame]:
        """The complete frames in ``data`` (with what an earlier feed left incomplete).

        A read that holds many frames (a burst) is cut with one ``split`` in C; frames are
        checked one by one only when the read is longer than the limit (one of them might be)
        or a frame over the limit is being dropped."""
        if self._discarding or len(data) + len(self._partial) > self._max:
            return self._feed_checked(data)
        if self._partial:
            self._partial += data
            data = bytes(self._partial)
            self._partial.clear()
        *lines, rest = data.split(b"\n")
        if rest:
            self._partial += rest
        return [line for line in lines if line and not line.isspace()]

    def _feed_checked(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            if self._discarding:
                self._discarding = False
            elif self._partial:
                self._partial += data[start:end]
                self._emit(bytes(self._partial), frames)
                self._partial.clear()
            else:
                self._emit(data[start:end], frames)
            start = end + 1
        if start < len(data) and not self._discarding:
            self._partial += data[start:]
            if len(self._partial) > self._max:
                self._partial.clear()
                self._discarding = True
                frames.append(Oversize(self._max))
        return frames

    def eof(self) -> list[Frame]:
        frames: list[Frame] = []
        if self._partial:
            self._emit(bytes(self._partial), frames)
            self._partial.clear()
        return frames

    def _emit(self, line: bytes, frames: list[Frame]) -> None:
        if len(line) > self._max:
            frames.append(Oversize(self._max))
        elif line.strip():
            frames.append(line)


class Packet4Decoder:
    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self._max = max_frame_bytes
        self._buffer = bytearray()
        self._skip = 0

    @property
    def pending(self) -> int:
        return len(self._buffer) + self._skip

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        buffer = self._buffer
        buffer += data
        while True:
            if self._skip:
                dropped = min(self._skip, len(buffer))
                del buffer[:dropped]
                self._skip -= dropped
                if self._skip:
                    break
            if len(buffer) < 4:
                break
            size = int.from_bytes(buffer[:4], "big")
            if size > self._max:
                del buffer[:4]
                self._skip = size
                frames.append(Oversize(self._max))
                continue
            if len(buffer) < 4 + size:
                break
            frames.append(bytes(buffer[4 : 4 + size]))
            del buffer[: 4 + size]
        return frames

    def eof(self) -> list[Frame]:
        return []


def make_decoder(framing: Framing, max_frame_bytes: int) -> FrameDecoder:
    if framing == "packet4":
        return Packet4Decoder(max_frame_bytes)
    return LineDecoder(max_frame_bytes)


def encode_line(payload: bytes) -> bytes:
    """JSON encoders escape newlines inside strings, so a payload never contains ``\\n``."""
    return payload + b"\n"


def encode_packet4(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


def frame_encoder(framing: Framing) -> Callable[[bytes], bytes]:
    return encode_packet4 if framing == "packet4" else encode_line


def encode_lines(payloads: list[bytes]) -> bytes:
    """Several frames in one buffer, framed by one ``join`` (the replies of a burst)."""
    return b"\n".join(payloads) + b"\n" if payloads else b""


def encode_packets4(payloads: list[bytes]) -> bytes:
    return b"".join([encode_packet4(payload) for payload in payloads])


def frames_encoder(framing: Framing) -> Callable[[list[bytes]], bytes]:
    return encode_packets4 if framing == "packet4" else encode_lines
