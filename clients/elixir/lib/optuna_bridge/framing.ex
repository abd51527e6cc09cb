defmodule OptunaBridge.Framing do
  @moduledoc """
  The two transports of the protocol, as pure functions over what an Erlang port delivers.

  * `:line` — one JSON text per `\\n`-terminated line. The port is opened with
    `{:line, #{65_536}}`, so a longer line arrives as `{:noeol, chunk}` pieces and a final
    `{:eol, rest}`; `feed/3` keeps the pieces until the line is whole. Blank lines are skipped.
    A last line without its newline when the worker exits is no frame (PROTOCOL.md, "Framing":
    the worker was stopped in the middle of writing it): its pieces stay in the buffer and are
    dropped with it, never decoded.
  * `:packet4` — a 4-byte big-endian length and the JSON; the port (`{:packet, 4}`) adds and
    strips the header itself, so every message is exactly one frame.

  Nothing here touches a port, so the reassembly is testable without a process.
  """

  @type t :: :line | :packet4
  @typedoc "Pieces of a line received so far (`:line` only)."
  @type buffer :: iodata()
  @type port_data :: binary() | {:eol, binary()} | {:noeol, binary()}

  @max_line 65_536

  @doc "The option that makes `Port.open/2` deliver this framing."
  @spec port_option(t()) :: {:line, pos_integer()} | {:packet, 4}
  def port_option(:line), do: {:line, @max_line}
  def port_option(:packet4), do: {:packet, 4}

  @doc "The worker's `--framing` value."
  @spec worker_flag(t()) :: String.t()
  def worker_flag(:line), do: "line"
  def worker_flag(:packet4), do: "packet4"

  @doc "Checks a user-supplied framing option."
  @spec validate(term()) :: {:ok, t()} | {:error, String.t()}
  def validate(framing) when framing in [:line, :packet4], do: {:ok, framing}
  def validate(other), do: {:error, "framing must be :line or :packet4, got: #{inspect(other)}"}

  @doc """
  Adds one port message to the buffer: `{:frame, binary, new_buffer}` when a frame is complete,
  `{:more, new_buffer}` otherwise.

      iex> {:more, buf} = OptunaBridge.Framing.feed(:line, [], {:noeol, "{\\"a\\""})
      iex> OptunaBridge.Framing.feed(:line, buf, {:eol, ":1}"})
      {:frame, ~s({"a":1}), []}
  """
  @spec feed(t(), buffer(), port_data()) :: {:frame, binary(), buffer()} | {:more, buffer()}
  def feed(:line, buffer, {:noeol, chunk}), do: {:more, [buffer | chunk]}

  def feed(:line, buffer, {:eol, rest}) do
    line = IO.iodata_to_binary([buffer | rest])

    if String.trim(line) == "", do: {:more, []}, else: {:frame, line, []}
  end

  def feed(:packet4, buffer, data) when is_binary(data), do: {:frame, data, buffer}

  @doc "The bytes to write to the port for one JSON text."
  @spec encode(t(), iodata()) :: iodata()
  def encode(:line, json), do: [json, ?\n]
  def encode(:packet4, json), do: json
end
