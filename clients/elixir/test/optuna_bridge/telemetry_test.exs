defmodule OptunaBridge.TelemetryTest do
  @moduledoc """
  Telemetry events and Logger metadata. `:telemetry` is the real one when present, otherwise the
  test-only stand-in in test/support/fake_telemetry.ex (the client itself never requires it).
  The README's event table is read here and every row checked against what the client emits.
  """
  # handlers and the enabled switch are global: not async
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog
  require Logger

  alias OptunaBridge.{Study, TestSupport}

  @space [x: [type: "float", low: 0.0, high: 1.0]]
  @readme Path.expand("../../README.md", __DIR__)

  # The README table: one row per event, `{event, measurements, metadata}` (atoms in backticks).
  @table @readme
         |> File.read!()
         |> String.split("<!-- telemetry-events -->\n")
         |> Enum.at(1)
         |> String.split("\n\n", parts: 2)
         |> hd()
         |> String.split("\n")
         |> Enum.drop(2)
         |> Enum.map(fn row ->
           [event, measurements, metadata | _] =
             row |> String.split("|", trim: true) |> Enum.map(&String.trim/1)

           names = fn cell ->
             Regex.scan(~r/`(\w+)`/, cell, capture: :all_but_first)
             |> Enum.map(fn [n] -> String.to_atom(n) end)
           end

           {event |> String.trim("`") |> Code.eval_string() |> elem(0), names.(measurements),
            names.(metadata)}
         end)

  setup do
    parent = self()
    id = "test-#{System.unique_integer([:positive])}"
    events = Enum.map(@table, &elem(&1, 0))

    :telemetry.attach_many(
      id,
      events,
      fn e, m, meta, _ -> send(parent, {:event, e, m, meta}) end,
      nil
    )

    on_exit(fn ->
      :telemetry.detach(id)
      OptunaBridge.Telemetry.setup()
    end)

    :ok
  end

  test "the README table lists every event the client emits, with these keys" do
    assert length(@table) >= 9
    assert OptunaBridge.Telemetry.enabled?()

    # max_trials: 3 (complete + pruned) holds after the last trial: the stop rule's event too
    study =
      start_supervised!(
        {Study,
         {%{name: "tele", stop: %{max_trials: 3}}, @space,
          [restart_backoff: 10, checkpoint_every: 1]}}
      )

    objective = fn trial ->
      case trial.number do
        0 -> 1.0
        1 -> {:pruned, 0}
        2 -> raise "boom"
        _ -> 2.0
      end
    end

    capture_log(fn ->
      {:ok, _, %{rule: "max_trials"}} = OptunaBridge.optimize(study, objective, n_trials: 4)
      {:error, _} = Study.tell(study, 99, 1.0)
      :ok = Study.await_ready(study)
      %{os_pid: os_pid} = Study.info(study)
      TestSupport.signal(os_pid, "KILL")
      assert_receive {:event, [:optuna_bridge, :worker, :restart] = e, m, meta}, 60_000
      send(self(), {:event, e, m, meta})
      :ok = Study.await_ready(study)
    end)

    # The checkpoint after the last tell may still be on its way: wait for one, keep everything.
    recorded = collect(System.monotonic_time(:millisecond) + 60_000, [])

    for {event, measurements, metadata} <- @table do
      seen = for {^event, m, meta} <- recorded, do: {m, meta}
      assert seen != [], "no #{inspect(event)} recorded"

      for {m, meta} <- seen do
        optional = if event == [:optuna_bridge, :request, :stop], do: [:queue_time], else: []

        assert Enum.sort(Map.keys(m)) -- optional == Enum.sort(measurements -- optional),
               "#{inspect(event)} measurements #{inspect(Map.keys(m))}"

        assert Enum.sort(Map.keys(meta)) == Enum.sort(metadata),
               "#{inspect(event)} metadata #{inspect(Map.keys(meta))}"

        assert meta.study == "tele", "#{inspect(event)} study #{inspect(meta.study)}"
      end
    end

    stops = for {[:optuna_bridge, :trial, :stop], _, meta} <- recorded, do: meta.state
    assert Enum.sort(stops) == [:complete, :complete, :pruned]

    assert [%{reason: %RuntimeError{message: "boom"}}] =
             for({[:optuna_bridge, :trial, :exception], _, meta} <- recorded, do: meta)

    results =
      for {[:optuna_bridge, :request, :stop], m, %{method: "tell"} = meta} <- recorded,
          do: {meta.result, is_integer(m[:queue_time]) and m.queue_time >= 0}

    assert {{:error, :trial_not_found}, true} in results
    assert {:ok, true} in results
  end

  test "Logger metadata: method while a call is handled, cleared after; study and os_pid stay" do
    study = start_supervised!({Study, {%{name: "tele-log"}, @space, []}})
    {:ok, _} = Study.ask(study)
    {:dictionary, dict} = Process.info(study, :dictionary)
    metadata = Map.new(dict[:"$logger_metadata$"] || %{})
    assert metadata[:study] == "tele-log"
    assert is_integer(metadata[:os_pid])
    refute Map.has_key?(metadata, :method)
  end

  test "a killed worker logs with study and os_pid" do
    study = start_supervised!({Study, {%{name: "tele-kill"}, @space, [restart_backoff: 10]}})
    :ok = Study.await_ready(study)
    %{os_pid: os_pid} = Study.info(study)

    log =
      capture_log([metadata: [:study, :os_pid]], fn ->
        TestSupport.signal(os_pid, "KILL")
        assert_receive {:event, [:optuna_bridge, :worker, :exit], %{count: 1}, meta}, 60_000
        assert %{study: "tele-kill", os_pid: ^os_pid} = meta
        assert_receive {:event, [:optuna_bridge, :worker, :restart], _, %{restarts: 1}}, 60_000
        :ok = Study.await_ready(study)
      end)

    assert log =~ "study=tele-kill"
    assert log =~ "os_pid=#{os_pid}"
  end

  # Issue 25: without `:telemetry` the presence check cost ~2 ms per call (measured here:
  # `Code.ensure_loaded?(:telemetry)` of an absent module 2.3 ms, the persistent_term read ~1 us). Pings alternate in
  # blocks between "absent" (what setup/0 decides when `:telemetry` is not loaded) and "present"
  # in the same run, so machine noise hits both alike; absent must be no slower than present +
  # 10 %. On a loaded machine one measurement's p50s scatter by several %: up to 3 measurements
  # are taken and one must pass (the old per-call check would fail each by ~+90 %).
  test "telemetry costs nothing when absent: ping p50 within 10 % of the run with it" do
    study = start_supervised!({Study, {%{name: "tele-ping"}, @space, []}})
    :ok = Study.await_ready(study)
    for _ <- 1..50, do: :ok = Study.ping(study)

    results =
      Enum.reduce_while(1..3, [], fn _, results ->
        {with, without} = ping_p50s(study)
        results = [{with, without} | results]
        if without <= with * 1.10, do: {:halt, results}, else: {:cont, results}
      end)

    IO.puts(
      "\ntelemetry: ping p50 with / without :telemetry, 400 pings each: " <>
        Enum.map_join(Enum.reverse(results), ", ", fn {w, wo} -> "#{w} / #{wo} us" end)
    )

    assert Enum.any?(results, fn {with, without} -> without <= with * 1.10 end)
  end

  # ABBA order, so a drift of the machine's load during the run weighs on both sides alike.
  defp ping_p50s(study) do
    key = {OptunaBridge.Telemetry, :enabled}

    {with, without} =
      Enum.reduce(1..40, {[], []}, fn round, {with, without} ->
        order = if rem(round, 2) == 0, do: [true, false], else: [false, true]

        Enum.reduce(order, {with, without}, fn enabled, {with, without} ->
          :persistent_term.put(key, enabled)
          samples = for _ <- 1..10, do: timed(fn -> :ok = Study.ping(study) end)
          if enabled, do: {samples ++ with, without}, else: {with, samples ++ without}
        end)
      end)

    {p50(with), p50(without)}
  end

  defp timed(fun) do
    {us, _} = :timer.tc(fun)
    us
  end

  defp p50(samples), do: samples |> Enum.sort() |> Enum.at(div(length(samples), 2))

  defp collect(deadline, acc) do
    checkpointed? = Enum.any?(acc, &match?({[:optuna_bridge, :checkpoint, :stop], _, _}, &1))
    wait = if checkpointed?, do: 200, else: max(deadline - System.monotonic_time(:millisecond), 0)

    receive do
      {:event, e, m, meta} -> collect(deadline, [{e, m, meta} | acc])
    after
      wait -> Enum.reverse(acc)
    end
  end
end

defmodule OptunaBridge.ForwardLogsTest do
  @moduledoc "forward_logs: true: the worker's stderr JSON lines reach Logger at their level."
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog

  alias OptunaBridge.{Study, Worker}

  test "the worker's log lines are logged at their level, with os_pid" do
    log =
      capture_log([metadata: [:os_pid, :source], level: :debug], fn ->
        study =
          start_supervised!(
            {Study,
             {%{name: "fwd"}, [x: [type: "float", low: 0.0, high: 1.0]],
              [forward_logs: true, log_level: "debug"]}}
          )

        :ok = Study.await_ready(study)
        %{os_pid: os_pid} = Study.info(study)
        {:ok, _} = Study.ask(study)
        :ok = Study.stop(study)
        send(self(), {:os_pid, os_pid})
      end)

    assert_received {:os_pid, os_pid}
    assert log =~ "worker: "
    assert log =~ "os_pid=#{os_pid}"
    assert log =~ "source=worker"
    # only the FIFOs this VM made (others may be another run's)
    assert [] == Path.wildcard(Path.join(System.tmp_dir!(), "optuna_bridge_#{System.pid()}_*"))
  end

  test "log_line: levels from the JSON, other lines as warnings" do
    log =
      capture_log(fn ->
        Worker.log_line(~s({"level":"error","event":"boom","study":"s","timestamp":"t"}), 1)
        Worker.log_line("Traceback (most recent call last):", 1)
      end)

    assert log =~ "[error] worker: boom study=\"s\""
    assert log =~ "[warning] worker: Traceback"
    refute log =~ "timestamp"
  end
end
