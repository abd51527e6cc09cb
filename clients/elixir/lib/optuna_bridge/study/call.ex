defmodule OptunaBridge.Study.Call do
  @moduledoc false
  # The caller's side of a call to a study process: params encoded to JSON in the caller (a term
  # with no JSON form raises there), the deadline (the study answers `:timeout` itself; the
  # GenServer call's own limit is a backstop a margin later), exits turned into errors, and the
  # `[:optuna_bridge, :request]` telemetry span around it all.

  alias OptunaBridge.{Error, JSON, Telemetry, Wire}

  @call_margin 5_000

  def request(study, method, params, kind, opts) do
    do_call(study, {:request, method, encode!(params), true, kind}, opts[:timeout])
  end

  def encode!(term) do
    case JSON.encode(term) do
      {:ok, json} ->
        json

      {:error, error} ->
        raise ArgumentError, "no JSON form: #{error.message}: #{inspect(error.term)}"
    end
  end

  # The study answers `{:error, :timeout}` itself at the deadline; the call's own limit is a
  # backstop a margin later. Without `timeout:` the study's default applies (the caller cannot
  # know it, so its backstop is the study's default at most `@call_margin` later, see Study.Server.init_state/1).
  def do_call(study, message, timeout) do
    unless timeout == nil or (is_integer(timeout) and timeout >= 0),
      do: Wire.bad_option!(:timeout, timeout)

    limit = if is_integer(timeout), do: timeout + @call_margin, else: :default

    Telemetry.span(
      [:optuna_bridge, :request],
      fn -> %{study: study_name(study), method: call_method(message)} end,
      fn ->
        {reply, queue_time} = call_study(study, message, timeout, limit)
        queued = if queue_time, do: %{queue_time: queue_time}, else: %{}
        {reply, queued, %{result: result_tag(reply)}}
      end
    )
  end

  # The study's name (the one identifier telemetry uses), published in its process dictionary.
  def study_name(study) do
    with pid when is_pid(pid) <- GenServer.whereis(study),
         true <- node(pid) == node(),
         {:dictionary, dict} <- Process.info(pid, :dictionary) do
      dict[:optuna_bridge_study]
    else
      _ -> nil
    end
  end

  def result_tag({:error, %Error{kind: kind}}), do: {:error, kind}
  def result_tag(_), do: :ok

  # The reply and, for a call whose frame was written, its queue time (see reply_call/3).
  def call_study(study, message, timeout, limit) do
    try do
      case GenServer.call(study, {:call, message, timeout}, backstop(study, limit)) do
        {:queued, queue_time, reply} -> {reply, queue_time}
        reply -> {reply, nil}
      end
    catch
      :exit, {:timeout, _} ->
        {{:error, Error.client(:timeout, "the study process did not answer in time")}, nil}

      :exit, {{:shutdown, {:start_failed, %Error{} = error}}, _} ->
        {{:error, error}, nil}

      :exit, {reason, {GenServer, :call, _}} ->
        {{:error,
          Error.client(:worker_stopped, "the study is not running", %{
            "reason" => inspect(reason)
          })}, nil}
    end
  end

  def backstop(_study, limit) when is_integer(limit), do: limit
  def backstop(study, :default), do: default_timeout(study) + @call_margin

  # The study's default timeout, published in its process dictionary at init (read without a
  # message, so even a study that is busy answering is not asked).
  def default_timeout(study) do
    with pid when is_pid(pid) <- GenServer.whereis(study),
         true <- node(pid) == node(),
         {:dictionary, dict} <- Process.info(pid, :dictionary),
         timeout when is_integer(timeout) <- dict[:optuna_bridge_timeout] do
      timeout
    else
      _ -> 15_000
    end
  end

  def raw_request(study, method, params, opts),
    do: do_call(study, {:request, method, encode!(params), false, :raw}, opts[:timeout])

  def unwrap({:ok, value}), do: value
  def unwrap(error), do: error

  def call_method(:await_ready), do: "await_ready"
  def call_method(:errors), do: "errors"
  def call_method(:info), do: "info"
  def call_method({:request, method, _, _, _}), do: method
end
