defmodule OptunaBridge.Backpressure do
  @moduledoc """
  The bound on what one `OptunaBridge.Study` holds for its worker (`:max_pending`, default
  #{1_000}): calls waiting for a reply or for the worker to come back, `tell_async/4` casts queued
  while it restarts, and frames its port owner has not written yet (a worker that stopped
  reading). Past it a call is `{:error, %OptunaBridge.Error{kind: :overloaded}}` at once and a
  cast is refused the same way, so a stuck worker cannot make the BEAM's memory grow without end.

  Why a counter: `tell_async/4` must answer in its caller without a round trip to the study. The
  study publishes its count in an `:atomics` array (a store per change, no message); a caller
  looks the array up once per study (from the study's process dictionary) and keeps it in its own.
  """

  alias OptunaBridge.Error

  @default 1_000
  @key :optuna_bridge_pending

  @type t :: %{ref: :atomics.atomics_ref(), max: pos_integer()}

  @doc "The default `:max_pending`."
  @spec default() :: pos_integer()
  def default, do: @default

  @doc "A bound for the calling (study) process, published where callers find it."
  @spec new(pos_integer()) :: t()
  def new(max) do
    ref = :atomics.new(2, [])
    :atomics.put(ref, 2, max)
    Process.put(@key, ref)
    %{ref: ref, max: max}
  end

  @doc "Whether `pending` more is past the bound (the study's own check)."
  @spec full?(t(), non_neg_integer()) :: boolean()
  def full?(%{max: max}, pending), do: pending >= max

  @doc "Publishes the study's current count."
  @spec publish(t(), non_neg_integer()) :: :ok
  def publish(%{ref: ref}, pending), do: :atomics.put(ref, 1, pending)

  @doc "How much a study process (pid) owner holds in its mailbox: frames not written yet."
  @spec backlog(pid() | nil) :: non_neg_integer()
  def backlog(nil), do: 0

  def backlog(pid) do
    case Process.info(pid, :message_queue_len) do
      {:message_queue_len, n} -> n
      nil -> 0
    end
  end

  @doc """
  The caller's check before a cast to `study`: `:ok`, or the `:overloaded` error when the study
  published a full count. A study on another node or not running is `:ok` (the cast decides).
  """
  @spec check(GenServer.server()) :: :ok | {:error, Error.t()}
  def check(study) do
    with pid when is_pid(pid) <- GenServer.whereis(study),
         ref when ref != nil <- ref_of(pid),
         pending = :atomics.get(ref, 1),
         max = :atomics.get(ref, 2),
         true <- pending >= max do
      {:error, overloaded(pending, max)}
    else
      _ -> :ok
    end
  end

  @doc "The error for a call or cast past the bound."
  @spec overloaded(non_neg_integer(), pos_integer()) :: Error.t()
  def overloaded(pending, max),
    do:
      Error.client(
        :overloaded,
        "the study holds #{pending} pending requests (max_pending: #{max}); try again later",
        %{"pending" => pending, "max_pending" => max}
      )

  defp ref_of(pid) do
    case Process.get({@key, pid}) do
      nil ->
        ref =
          with true <- node(pid) == node(),
               {:dictionary, dict} <- Process.info(pid, :dictionary),
               do: dict[@key],
               else: (_ -> nil)

        if ref, do: Process.put({@key, pid}, ref)
        ref

      ref ->
        ref
    end
  end
end
