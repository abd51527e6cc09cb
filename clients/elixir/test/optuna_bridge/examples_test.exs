defmodule OptunaBridge.ExamplesTest do
  @moduledoc """
  Replays every conversation in `protocol/examples/` against the real worker through a port, in
  both framings: each `send` is re-encoded by `OptunaBridge.JSON` (each `send_raw` goes out as
  its raw bytes) and the decoded replies must equal the decoded `expect`.

  `send` is decoded with `objects: :ordered` so members keep their order: a seeded sampler draws
  parameters in search-space order, so the order is part of what is sent.
  """
  use ExUnit.Case, async: true

  alias OptunaBridge.{JSON, Worker}
  alias OptunaBridge.TestSupport

  # a hang bound, not a speed measurement: a worker starting while every core is busy is slow
  @timeout 60_000

  for file <- TestSupport.conversation_files(), framing <- [:line, :packet4] do
    @file_path file
    @framing framing
    test "#{Path.basename(file)} replays over #{framing}" do
      replay(@file_path, @framing)
    end
  end

  test "there are conversations to replay" do
    assert length(TestSupport.conversation_files()) >= 2
  end

  defp replay(file, framing) do
    {:ok, worker} = Worker.open(framing: framing)
    {:frame, ready, worker} = Worker.receive_frame(worker, @timeout)
    assert %{"method" => "ready", "params" => %{"framing" => wire_framing}} = JSON.decode!(ready)
    assert wire_framing == Atom.to_string(framing)

    worker =
      file
      |> File.stream!()
      |> Stream.with_index(1)
      |> Enum.reduce(worker, fn {line, n}, worker ->
        step = JSON.decode!(line)
        :ok = Worker.send_frame(worker, outgoing(JSON.decode!(line, objects: :ordered)))
        {replies, worker} = receive_frames(worker, length(step["expect"]))

        assert same?(replies, step["expect"]),
               "#{Path.basename(file)}:#{n}: replies differ from expect: #{inspect(replies)}"

        worker
      end)

    # Nothing unexpected is left: the next frame is the reply to a final ping.
    :ok = Worker.send_frame(worker, JSON.encode!(%{jsonrpc: "2.0", id: "end", method: "ping"}))
    {[last], worker} = receive_frames(worker, 1)
    assert last == %{"jsonrpc" => "2.0", "id" => "end", "result" => %{"pong" => true}}
    Worker.close(worker, 2_000)
  end

  # Exact (types included: 3 is not 3.0), except that floats numpy computed (importances) may
  # differ in their last digits between numpy releases: they match within a relative 1e-9.
  defp same?(got, expected) when is_float(got) and is_float(expected),
    do: abs(got - expected) <= max(1.0e-9 * max(abs(got), abs(expected)), 1.0e-12)

  defp same?(got, expected) when is_map(got) and is_map(expected),
    do:
      Map.keys(got) == Map.keys(expected) and
        Enum.all?(expected, fn {k, v} -> same?(got[k], v) end)

  defp same?(got, expected) when is_list(got) and is_list(expected),
    do:
      length(got) == length(expected) and
        Enum.all?(Enum.zip(got, expected), fn {g, e} -> same?(g, e) end)

  defp same?(got, expected), do: got === expected

  defp outgoing(%JSON.Ordered{pairs: pairs}) do
    case List.keyfind(pairs, "send_raw", 0) do
      {_, raw} -> raw
      nil -> pairs |> List.keyfind!("send", 0) |> elem(1) |> JSON.encode!()
    end
  end

  defp receive_frames(worker, 0), do: {[], worker}

  defp receive_frames(worker, n) do
    case Worker.receive_frame(worker, @timeout) do
      {:frame, frame, worker} ->
        {rest, worker} = receive_frames(worker, n - 1)
        {[JSON.decode!(frame) | rest], worker}

      other ->
        flunk("expected #{n} more frame(s), got #{inspect(other)}")
    end
  end
end
