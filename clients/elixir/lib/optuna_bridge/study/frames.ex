defmodule OptunaBridge.Study.Frames do
  @moduledoc false
  # Frames between the study process and its worker: requests and notifications out (ids, the
  # worker's frame size limit, the outbox of frames not answered yet) and frames in (replies
  # matched to their waiter, error notifications attributed to the frame they concern, late
  # replies to calls that timed out).

  require Logger

  alias OptunaBridge.{Error, JSON, LateReply, Outbox, PortOwner, RPC, TrialLedger}
  alias OptunaBridge.Study.{Checkpoints, Establish, Results, Server, Session}

  def send_request(state, method, params_json, waiter) do
    # on a shared worker, ids are unique in the VM so that replies route without rewriting
    id = if state.shared, do: :erlang.unique_integer([:positive, :monotonic]), else: state.next_id

    frame = [
      ~s({"jsonrpc":"2.0","id":),
      Integer.to_string(id),
      ~s(,"method":),
      JSON.encode!(method),
      ~s(,"params":),
      params_json,
      ?}
    ]

    case write(%{state | next_id: id + 1}, frame, {:request, id}) do
      {:ok, state} -> {:ok, %{state | pending: Map.put(state.pending, id, waiter)}}
      {:error, error, state} -> {:error, error, state}
    end
  end

  def write(%{owner: nil} = state, _frame, _what),
    do: {:error, Error.client(:worker_crashed, "the worker is gone"), state}

  def write(state, frame, what) do
    bytes = IO.iodata_length(frame)

    if state.max_frame && bytes > state.max_frame do
      error =
        Error.client(
          :frame_too_large,
          "the frame is #{bytes} bytes; this worker reads at most #{state.max_frame} " <>
            "(--max-frame-bytes); it was not sent",
          %{"bytes" => bytes, "max_frame_bytes" => state.max_frame}
        )

      {:error, error, state}
    else
      PortOwner.write(state.owner, frame)
      seq = state.seq + 1

      entry =
        case what do
          {:request, id} -> {:request, seq, id, bytes}
          {:notification, method, meta} -> {:notification, seq, method, meta, bytes}
        end

      {:ok, %{state | seq: seq, outbox: Outbox.push(state.outbox, entry)}}
    end
  end

  def with_study(_state, json, false), do: json
  def with_study(state, "{}", true), do: [~s({"study":), state.study_json, ?}]
  def with_study(state, "{" <> rest, true), do: [~s({"study":), state.study_json, ?,, rest]

  def handle_frame(state, frame) do
    case JSON.decode(frame) do
      {:ok, decoded} ->
        dispatch(state, RPC.classify(decoded))

      {:error, error} ->
        Logger.error("optuna_bridge: undecodable frame from the worker: #{error.message}")
        state
    end
  end

  def dispatch(state, {:reply, id, outcome}) do
    {_settled, outbox} = Outbox.reply(state.outbox, id)
    complete(%{state | outbox: outbox}, id, outcome)
  end

  def dispatch(state, {:unattributed_error, error}) do
    case Outbox.null_error(state.outbox, error.kind, state.max_frame) do
      {{:request, _seq, id, _bytes}, outbox} ->
        complete(%{state | outbox: outbox}, id, {:error, error})

      {{:notification, _seq, method, meta, _bytes}, outbox} ->
        error = %{error | method: method, data: attach_number(error.data, meta)}
        notification_failed(%{state | outbox: outbox}, error)

      {nil, _} ->
        Logger.warning("optuna_bridge: worker error for no frame: #{error.message}")
        state
    end
  end

  def dispatch(%{status: :starting} = state, {:notification, "ready", params})
      when is_map(params),
      do: Establish.on_ready(state, params)

  def dispatch(state, {:notification, "error", %Error{} = error}) do
    {entry, outbox} = Outbox.notification_error(state.outbox, error.method)

    data =
      case entry do
        {:notification, _, _, meta, _} -> attach_number(error.data, meta)
        nil -> error.data
      end

    notification_failed(%{state | outbox: outbox}, %{error | data: data})
  end

  def dispatch(state, other) do
    Logger.debug("optuna_bridge: ignored frame #{inspect(other)}")
    state
  end

  def attach_number(data, number) when is_integer(number),
    do: Map.put_new(data, "number", number)

  def attach_number(data, _), do: data

  def notification_failed(state, error) do
    ledger = TrialLedger.settled(state.ledger, error.data["number"])
    Session.record_error(%{state | ledger: ledger}, error)
  end

  def complete(state, id, outcome) do
    {waiter, pending} = Map.pop(state.pending, id)
    state = %{state | pending: pending}

    case waiter do
      {:call, ref, kind} when not is_map_key(state.calls, ref) ->
        late_reply(state, kind, outcome)

      {:call, ref, kind} ->
        {reply, state} = Results.call_result(state, kind, outcome)
        method = state.calls[ref] && state.calls[ref].method
        reply = with {:error, e} <- reply, do: {:error, %{e | method: method}}
        Server.reply_call(state, ref, reply)

      {:setup, step} ->
        Establish.setup_reply(state, step, outcome)

      {:checkpoint, seq, started} ->
        Checkpoints.checkpointed(state, {seq, started}, outcome)

      :ignore ->
        with {:error, e} <- outcome, do: Logger.warning("optuna_bridge: #{e.message}")
        state

      nil ->
        state
    end
  end

  # The reply to a call that timed out (its caller already has `:timeout`): what it did is not
  # left unsaid. Trials a late `ask` created are told fail at once (nobody holds them); a late
  # `tell` reply (applied or refused) is kept in `errors/1`. See OptunaBridge.LateReply.
  def late_reply(state, kind, outcome) do
    {_reply, state} = Results.call_result(state, kind, outcome)

    case LateReply.classify(state.study, kind, outcome) do
      {:release, numbers, error} ->
        state =
          Enum.reduce(numbers, state, fn n, state ->
            params = LateReply.release_params(state.study, n)
            {_, state} = send_request(state, "tell", JSON.encode!(params), :ignore)
            state
          end)

        ledger = TrialLedger.finished(state.ledger, numbers)
        Session.record_error(%{state | ledger: ledger}, error)

      {:record, error} ->
        Session.record_error(state, error)

      :ignore ->
        state
    end
  end
end
