defmodule OptunaBridge.Error do
  @moduledoc """
  An error from the worker (an error reply or an `error` notification) or from the client's
  handling of the worker (it crashed, it was stopped, it did not answer in time).

  `kind` is the atom to match on. Worker kinds come from the closed table in `PROTOCOL.md`
  (`data.kind` on the wire); the string is mapped through a fixed table, never `String.to_atom/1`,
  so an unexpected kind from the worker becomes `:unknown` (the original string stays in
  `data["kind"]`). Client-side kinds:

    * `:worker_crashed` — the worker process exited while the request was pending (or could not
      be written to); the study is being rebuilt on a new worker.
    * `:worker_stopped` — the study was stopped while the request was pending.
    * `:timeout` — no reply within the study's `:timeout`.
    * `:start_failed` — a worker did not start (no `ready` frame, bad executable), or the first
      worker refused the study (then the worker's own kind, e.g. `:invalid_params`, is returned).
    * `:trial_lost` — a tell of a trial handed out by a worker that died, which the new worker
      does not have with the same params (refused, never recorded on other params); or a tell
      that died with the worker (kept in `errors/1`).
    * `:frame_too_large` — also client-side: the frame is longer than the worker's announced
      `max_frame_bytes` and was not sent.

    * `:multi_objective` — `best_trial/1` on a study with several objectives: there is no single
      best trial, use `best_trials/1` for the Pareto front.
    * `:study_stopped` / `:not_configured` are worker kinds: `ask` of a study whose stop rule
      holds (`data["rule"]`), and artifacts on a worker started without `--artifacts DIR`.
    * `:objective_failed` — an objective run by `OptunaBridge.optimize/3` raised, threw or
      exited (kept in the trial's user attrs; `optimize/3` returns it only when nothing completed).

    * `:overloaded` — the study already holds `:max_pending` requests for its worker (see
      `OptunaBridge.Backpressure`); the call or `tell_async/4` was refused, try again later.

  `method` is the request method that failed, when known (always set for a failed notification).
  """

  defexception [:kind, :code, :message, :data, :method]

  @type kind ::
          :parse_error
          | :invalid_request
          | :method_not_found
          | :invalid_params
          | :internal_error
          | :study_not_found
          | :study_exists
          | :trial_not_found
          | :trial_finished
          | :no_completed_trials
          | :frame_too_large
          | :storage_error
          | :snapshot_invalid
          | :limit_exceeded
          | :missing_dependency
          | :worker_stopping
          | :study_stopped
          | :not_configured
          | :unknown
          | :worker_crashed
          | :worker_stopped
          | :timeout
          | :start_failed
          | :trial_lost
          | :multi_objective
          | :objective_failed
          | :overloaded

  @type t :: %__MODULE__{
          kind: kind(),
          code: integer() | nil,
          message: String.t(),
          data: map(),
          method: String.t() | nil
        }

  @worker_kinds %{
    "parse_error" => :parse_error,
    "invalid_request" => :invalid_request,
    "method_not_found" => :method_not_found,
    "invalid_params" => :invalid_params,
    "internal_error" => :internal_error,
    "study_not_found" => :study_not_found,
    "study_exists" => :study_exists,
    "trial_not_found" => :trial_not_found,
    "trial_finished" => :trial_finished,
    "no_completed_trials" => :no_completed_trials,
    "frame_too_large" => :frame_too_large,
    "storage_error" => :storage_error,
    "snapshot_invalid" => :snapshot_invalid,
    "limit_exceeded" => :limit_exceeded,
    "missing_dependency" => :missing_dependency,
    "worker_stopping" => :worker_stopping,
    "study_stopped" => :study_stopped,
    "not_configured" => :not_configured
  }

  @doc "The atom for a worker's `data.kind` string; `:unknown` for anything not in the table."
  @spec kind_of(term()) :: kind()
  def kind_of(kind) when is_binary(kind), do: Map.get(@worker_kinds, kind, :unknown)
  def kind_of(_), do: :unknown

  @doc """
  Builds the error from a decoded JSON-RPC error object.

      iex> OptunaBridge.Error.from_wire(%{"code" => -32001, "message" => "no study named 'x'",
      ...>   "data" => %{"kind" => "study_not_found", "study" => "x"}}, "ask")
      %OptunaBridge.Error{kind: :study_not_found, code: -32001, message: "no study named 'x'",
                          data: %{"kind" => "study_not_found", "study" => "x"}, method: "ask"}
  """
  @spec from_wire(map(), String.t() | nil) :: t()
  def from_wire(error, method \\ nil) when is_map(error) do
    data = if is_map(error["data"]), do: error["data"], else: %{}

    %__MODULE__{
      kind: kind_of(data["kind"]),
      code: if(is_integer(error["code"]), do: error["code"]),
      message: if(is_binary(error["message"]), do: error["message"], else: "error from worker"),
      data: data,
      method: method
    }
  end

  @doc "A client-side error (`:worker_crashed`, `:worker_stopped`, `:timeout`, `:trial_lost`, ...)."
  @spec client(kind(), String.t(), map()) :: t()
  def client(kind, message, data \\ %{}),
    do: %__MODULE__{kind: kind, code: nil, message: message, data: data}
end
