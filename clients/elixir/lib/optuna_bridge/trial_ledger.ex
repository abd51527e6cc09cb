defmodule OptunaBridge.TrialLedger do
  @moduledoc """
  Which trials this client handed out and told, so that a tell is never recorded on parameters
  other than the ones its trial was asked with, across worker restarts. Pure data;
  `OptunaBridge.Study` keeps one per study.

  Why: after an in-memory recovery the new worker restarts from the last snapshot, so it would
  hand out again the numbers given out after it, with other params; a late tell from an evaluator
  that started before the crash would then land on the wrong params. The ledger keeps

    * `asked` — trials handed out and not told yet, with their params;
    * `told` — tells written to the worker that a crash could still lose (until they are in a
      checkpoint, or processed by a durable worker), with their frame's sequence number; trials
      recorded by `add_trials` are kept there too (params `:added`): they are finished at once
      and never handed out;
    * `lost` — numbers refused from now on (`:trial_lost`);
    * `max_number` — the highest number handed out, so the new worker's numbering can be moved
      past it.

  After a restart `reconcile/2` compares it with the new worker's trials: a trial the new worker
  has running with the same params survives; one it has finished with the same params (failed
  when its lease ended, or told by another client of a shared study) is simply no longer handed
  out (a tell of it gets the worker's `trial_finished`); any other is lost.

  Trials asked with a lease and abandoned are failed by the worker: `finished/2` (a tell or renew
  answered `trial_finished`) and `seen/2` (a `trials`/`best` reply showing them finished) drop
  them, so the ledger does not grow with abandoned trials.
  """

  defstruct asked: %{}, told: [], lost: MapSet.new(), max_number: -1

  @type number_ :: non_neg_integer()
  @type t :: %__MODULE__{
          asked: %{number_() => map()},
          told: [{seq :: non_neg_integer(), number_(), params :: map() | :added | nil}],
          lost: MapSet.t(number_()),
          max_number: integer()
        }

  @doc "An empty ledger."
  @spec new() :: t()
  def new, do: %__MODULE__{}

  @doc "Trials an `ask` handed out: `[%{number:, params:}]`."
  @spec handed_out(t(), [%{number: number_(), params: map()}]) :: t()
  def handed_out(%__MODULE__{} = ledger, trials) do
    Enum.reduce(trials, ledger, fn %{number: n, params: params}, l ->
      %{
        l
        | asked: Map.put(l.asked, n, params),
          max_number: max(l.max_number, n),
          lost: MapSet.delete(l.lost, n)
      }
    end)
  end

  @doc """
  Trials recorded by `add_trials` (numbers), answered while frame `seq` was the newest written:
  finished, never handed out. Their numbers count as given out (never handed out again with other
  params); with `remember?` they are kept, like tells, until safe.
  """
  @spec added(t(), non_neg_integer(), [number_()], boolean()) :: t()
  def added(%__MODULE__{} = ledger, seq, numbers, remember?) do
    ledger = %{ledger | max_number: Enum.reduce(numbers, ledger.max_number, &max/2)}

    if remember?,
      do: %{ledger | told: Enum.reverse(Enum.map(numbers, &{seq, &1, :added}), ledger.told)},
      else: ledger
  end

  @doc "The worker says these trials are finished (e.g. failed when their lease ended)."
  @spec finished(t(), [number_()]) :: t()
  def finished(%__MODULE__{} = ledger, numbers),
    do: %{ledger | asked: Map.drop(ledger.asked, numbers)}

  @doc "Trials of a `trials`/`best` reply (`OptunaBridge.Trial`s): the finished ones are dropped."
  @spec seen(t(), [OptunaBridge.Trial.t()]) :: t()
  def seen(%__MODULE__{asked: asked} = ledger, _trials) when map_size(asked) == 0, do: ledger

  def seen(%__MODULE__{} = ledger, trials) do
    done = for %{number: n, state: state} <- trials, state not in [:running, :waiting], do: n
    finished(ledger, done)
  end

  @doc "Whether a tell of this number must be refused."
  @spec lost?(t(), number_()) :: boolean()
  def lost?(%__MODULE__{lost: lost}, number), do: MapSet.member?(lost, number)

  @doc """
  A tell of `number` was written as frame `seq`. With `remember?` false (nothing would survive a
  crash anyway) it is not kept for reconciliation.
  """
  @spec told(t(), non_neg_integer(), number_(), boolean()) :: t()
  def told(%__MODULE__{} = ledger, seq, number, remember?) do
    {params, asked} = Map.pop(ledger.asked, number)
    ledger = %{ledger | asked: asked}
    if remember?, do: %{ledger | told: [{seq, number, params} | ledger.told]}, else: ledger
  end

  @doc "Tells up to frame `seq` are safe (in a checkpoint whose export was frame `seq + 1`...)."
  @spec safe_through(t(), integer()) :: t()
  def safe_through(%__MODULE__{} = ledger, seq),
    do: %{ledger | told: Enum.filter(ledger.told, fn {s, _, _} -> s > seq end)}

  @doc "The worker answered the tell of `number` (with an error): nothing left to lose."
  @spec settled(t(), term()) :: t()
  def settled(%__MODULE__{} = ledger, number),
    do: %{ledger | told: Enum.reject(ledger.told, fn {_, n, _} -> n == number end)}

  @doc """
  The worker refused the newest tell of `number` (an error reply): that tell changed nothing, so
  a crash cannot lose it. An earlier tell of the same number (the one that finished the trial)
  is kept.
  """
  @spec refused(t(), non_neg_integer()) :: t()
  def refused(%__MODULE__{} = ledger, number) do
    newest =
      ledger.told
      |> Enum.filter(fn {_, n, _} -> n == number end)
      |> Enum.max_by(fn {seq, _, _} -> seq end, fn -> nil end)

    %{ledger | told: List.delete(ledger.told, newest)}
  end

  @doc """
  Compares the ledger with the trials of a new worker (`[%{"number", "state", "params"}]` as the
  wire has them). Returns the new ledger and the tells that died with the old worker, each
  `{number, :tell_again}` (the trial is running with its params), `{number, :lost}`, or
  `{number, :add_lost}` (a trial recorded by `add_trials` that the new worker does not have).
  """
  @spec reconcile(t(), [map()]) :: {t(), [{number_(), :tell_again | :lost | :add_lost}]}
  def reconcile(%__MODULE__{} = ledger, trials) do
    known = Map.new(trials, fn t -> {t["number"], {t["state"], t["params"]}} end)

    {asked, lost} =
      Enum.reduce(ledger.asked, {%{}, ledger.lost}, fn {n, params}, {asked, lost} ->
        case known[n] do
          {"running", ^params} -> {Map.put(asked, n, params), lost}
          {finished, ^params} when finished in ["complete", "pruned", "fail"] -> {asked, lost}
          _ -> {asked, MapSet.put(lost, n)}
        end
      end)

    {ledger, dead} =
      Enum.reduce(Enum.reverse(ledger.told), {%{ledger | asked: asked, lost: lost}, []}, fn
        {_seq, n, params}, {l, dead} ->
          case known[n] do
            {finished, _} when finished in ["complete", "pruned", "fail"] ->
              {l, dead}

            {"running", ^params} ->
              {%{l | asked: Map.put(l.asked, n, params)}, [{n, :tell_again} | dead]}

            _ when params == :added ->
              {%{l | lost: MapSet.put(l.lost, n)}, [{n, :add_lost} | dead]}

            _ ->
              {%{l | lost: MapSet.put(l.lost, n)}, [{n, :lost} | dead]}
          end
      end)

    {%{ledger | told: []}, Enum.reverse(dead)}
  end

  @doc """
  How many numbers the new worker would hand out again (its next number is one past its highest
  trial): they must be burnt before any `ask` is served.
  """
  @spec to_burn(t(), [map()]) :: non_neg_integer()
  def to_burn(%__MODULE__{max_number: max_number}, trials) do
    next = Enum.reduce(trials, -1, &max(&1["number"], &2)) + 1
    max(max_number - next + 1, 0)
  end
end
