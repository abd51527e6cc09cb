defmodule OptunaBridge.Study.Options do
  @moduledoc false
  # The options of `OptunaBridge.Study.start_link/3`, checked in the caller: what needs no worker
  # is decided here (malformed options raise `ArgumentError`; a search space the worker would
  # refuse, a missing interpreter or a shared worker that is not running are
  # `{:error, %Error{}}`), and the study's create params are encoded once.

  alias OptunaBridge.{ClientId, Error, Wire, Worker}
  alias OptunaBridge.Study.Call

  @start_options [
    :name,
    :python,
    :forward_logs,
    :env,
    :cd,
    :worker_args,
    :framing,
    :log_level,
    :timeout,
    :start_timeout,
    :checkpoint_every,
    :checkpoint_interval,
    :checkpoint_spacing,
    :grace,
    :max_restarts,
    :restart_window,
    :restart_backoff,
    :keep,
    :worker,
    :pool,
    :max_pending,
    :client
  ]

  # options of the worker process itself: they belong to the shared worker or pool when used
  @process_options [:python, :env, :cd, :worker_args, :framing, :log_level, :forward_logs]

  # What needs no worker is checked here, in the caller: malformed options raise; a search space
  # the worker would refuse and a missing interpreter are `{:error, %Error{}}` at once.
  def prepare_start(study_config, search_space, opts) do
    opts = Wire.validate_options!(opts, @start_options)
    Enum.each(opts, &check_start_option/1)
    create = Wire.create_params(study_config, search_space)
    opts = placement(opts, create["study"])

    with :ok <- OptunaBridge.SpaceCheck.check(create["search_space"]),
         :ok <- interpreter(opts) do
      study_json = Call.encode!(create["study"])
      create_json = Call.encode!(create)
      opts = Keyword.put_new_lazy(opts, :client, fn -> ClientId.default(create["study"]) end)
      {:ok, Keyword.take(opts, [:name]), {create["study"], study_json, create, create_json, opts}}
    end
  end

  defp interpreter(opts) do
    case opts[:shared] do
      nil -> local_interpreter(opts)
      {OptunaBridge.Pool, _pool, _name} -> :ok
      worker -> shared_running(worker)
    end
  end

  # A shared worker that is not running can never answer: a start error now, in the caller.
  defp shared_running(worker) do
    case GenServer.whereis(worker) do
      pid when is_pid(pid) and node(pid) == node() ->
        if Process.alive?(pid), do: :ok, else: not_running(worker)

      nil ->
        not_running(worker)

      _remote ->
        :ok
    end
  end

  defp not_running(worker) do
    message = "the shared worker #{inspect(worker)} is not running"
    {:error, %{Error.client(:start_failed, message) | method: "create"}}
  end

  defp local_interpreter(opts) do
    case Worker.interpreter(opts) do
      {:ok, _} -> :ok
      {:error, message} -> {:error, %{Error.client(:start_failed, message) | method: "create"}}
    end
  end

  defp check_start_option({key, v})
       when key in [:timeout, :start_timeout, :grace, :restart_window, :restart_backoff] and
              (not is_integer(v) or v < 0),
       do: Wire.bad_option!(key, v)

  defp check_start_option({key, v})
       when key in [:checkpoint_every, :checkpoint_interval, :checkpoint_spacing, :max_restarts] and
              (not is_integer(v) or v < 0),
       do: Wire.bad_option!(key, v)

  defp check_start_option({:max_pending, v}) when not is_integer(v) or v < 1,
    do: Wire.bad_option!(:max_pending, v)

  defp check_start_option({:framing, v}) when v not in [:line, :packet4],
    do: Wire.bad_option!(:framing, v)

  defp check_start_option({:worker_args, v}) when not is_list(v),
    do: Wire.bad_option!(:worker_args, v)

  defp check_start_option({:python, v}) when not is_binary(v), do: Wire.bad_option!(:python, v)
  defp check_start_option({:cd, v}) when not is_binary(v), do: Wire.bad_option!(:cd, v)

  defp check_start_option({:forward_logs, v}) when not is_boolean(v),
    do: Wire.bad_option!(:forward_logs, v)

  defp check_start_option({:env, env}) do
    valid =
      is_list(env) and
        Enum.all?(env, fn
          {k, v} -> (is_binary(k) or is_atom(k)) and (is_binary(v) or is_nil(v))
          _ -> false
        end)

    unless valid, do: Wire.bad_option!(:env, env)
    :ok
  end

  # `keep: true` was the opt-out of the old delete-on-terminate; keeping is now the only behaviour.
  defp check_start_option({:keep, true}), do: :ok

  defp check_start_option({:keep, v}),
    do:
      raise(
        ArgumentError,
        "keep: #{inspect(v)} is gone: nothing deletes a study implicitly any more; " <>
          "delete explicitly with OptunaBridge.Study.delete/1 or stop(study, delete: true)"
      )

  defp check_start_option({:client, v})
       when not (v == false or (is_binary(v) and byte_size(v) in 1..128)),
       do: Wire.bad_option!(:client, v)

  defp check_start_option(_), do: :ok

  # A study on a shared worker (`worker:`) or in a pool (`pool:`, placed by its name) takes no
  # worker-process options: the worker is not its own.
  defp placement(opts, name) do
    shared = Keyword.take(opts, [:worker, :pool])

    case {shared, Keyword.take(opts, @process_options)} do
      {[], _} ->
        opts

      {[_], []} ->
        worker =
          case shared do
            [worker: worker] -> worker
            [pool: pool] -> {OptunaBridge.Pool, pool, name}
          end

        Keyword.put(Keyword.drop(opts, [:worker, :pool]), :shared, worker)

      {[_, _ | _], _} ->
        raise ArgumentError, "give worker: or pool:, not both"

      {_, process_opts} ->
        raise ArgumentError,
              "#{inspect(Keyword.keys(process_opts))} configure a worker process: give them to " <>
                "the shared worker or pool, not to a study placed on one"
    end
  end
end
