defmodule OptunaBridge.TestSupport do
  @moduledoc "Helpers shared by the tests: where the shared example conversations are, and waiting."

  @examples_dir Path.expand("../../../../protocol/examples", __DIR__)

  @doc "The repository's `protocol/examples/` directory, shared with the worker's own tests."
  @spec examples_dir() :: String.t()
  def examples_dir, do: @examples_dir

  @doc "Every `*.jsonl` file there."
  @spec example_files() :: [String.t()]
  def example_files, do: Path.wildcard(Path.join(@examples_dir, "*.jsonl")) |> Enum.sort()

  @doc "The files that are conversations (each line has `send` or `send_raw` and `expect`)."
  @spec conversation_files() :: [String.t()]
  def conversation_files do
    Enum.filter(example_files(), fn file ->
      file |> File.stream!() |> Enum.take(1) |> Enum.all?(&String.contains?(&1, "\"expect\""))
    end)
  end

  @doc """
  Polls `fun` every 20 ms until it returns a truthy value (returned) or `timeout` ms pass.

  The default is generous (a minute): it bounds a hang, it is not a speed measurement, and a
  worker restart on a machine whose every core is busy takes several seconds.
  """
  @spec wait_until((() -> term()), non_neg_integer()) :: term()
  def wait_until(fun, timeout \\ 60_000) do
    deadline = System.monotonic_time(:millisecond) + timeout
    do_wait(fun, deadline)
  end

  defp do_wait(fun, deadline) do
    cond do
      value = fun.() ->
        value

      System.monotonic_time(:millisecond) > deadline ->
        raise ExUnit.AssertionError, message: "condition not met in time"

      true ->
        Process.sleep(20)
        do_wait(fun, deadline)
    end
  end

  @doc "Sends a signal (`\"STOP\"`, `\"CONT\"`, `\"KILL\"`) to an OS process."
  @spec signal(non_neg_integer(), String.t()) :: :ok
  def signal(os_pid, sig) do
    {_, 0} = System.cmd("kill", ["-#{sig}", Integer.to_string(os_pid)])
    :ok
  end
end
