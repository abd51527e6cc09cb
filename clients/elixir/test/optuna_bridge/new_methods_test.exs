defmodule OptunaBridge.NewMethodsTest do
  @moduledoc """
  The methods the worker gained after the idiomatic client (add_trials, plot, renew, trials
  paging, metric_names, ask leases), against the real worker, and the TrialLedger for the trials
  they create (added: finished, never handed out; lease-failed: finished by the worker).
  """
  use ExUnit.Case, async: true

  alias OptunaBridge.{Error, Study, Trial}
  alias OptunaBridge.TestSupport

  @space [x: [type: "float", low: 0.0, high: 1.0], y: [type: "int", low: 0, high: 3]]

  defp start(name, config \\ %{}, opts \\ []) do
    config = Map.merge(%{name: name, sampler: %{type: "random", seed: 5}}, config)
    TestSupport.start_study!(config, @space, opts)
  end

  # the checkpoint's export has been answered (a snapshot the next worker is rebuilt from)
  defp wait_for_snapshot(study),
    do: TestSupport.wait_until(fn -> :sys.get_state(study).snapshot != nil end, 30_000)

  defp time(iso) do
    {:ok, dt, 0} = DateTime.from_iso8601(iso)
    dt
  end

  describe "add_trials" do
    test "records finished trials in order; best and the sampler see them; asks go past them" do
      study = start("add")

      assert {:ok, [0, 1, 2]} =
               Study.add_trials(study, [
                 %{params: %{x: 0.1, y: 1}, value: -5.0, user_attrs: %{"src" => "grid"}},
                 [params: [x: 0.2, y: 0], state: :fail],
                 %{
                   params: %{"x" => 0.3, "y" => 2},
                   state: "pruned",
                   intermediate_values: %{0 => 3.0, 4 => 2.5}
                 }
               ])

      assert {:ok, %Trial{number: 0, values: [-5.0], params: %{"x" => 0.1, "y" => 1}} = best} =
               Study.best_trial(study)

      assert best.user_attrs == %{"src" => "grid"}

      {:ok, trials} = Study.trials(study)
      assert Enum.map(trials, & &1.state) == [:complete, :fail, :pruned]
      assert Enum.at(trials, 2).intermediate_values == %{0 => 3.0, 4 => 2.5}

      # added trials are never handed out: the next ask is a new number
      assert {:ok, [%Trial{number: 3}]} = Study.ask(study)
      assert {:error, %Error{kind: :trial_finished}} = Study.tell(study, 0, 1.0)
    end

    test "trials of another study (structs) are copied; the worker checks params" do
      source = start("add-src")
      TestSupport.run_trials(source, 3, &(&1["x"] + &1["y"]))
      {:ok, copied} = Study.trials(source)
      target = start("add-dst")
      assert {:ok, [0, 1, 2]} = Study.add_trials(target, copied)
      {:ok, again} = Study.trials(target)
      assert Enum.map(again, &{&1.params, &1.values}) == Enum.map(copied, &{&1.params, &1.values})

      assert {:error, %Error{kind: :invalid_params} = error} =
               Study.add_trials(target, [%{params: %{nope: 1}, value: 1.0}])

      assert error.method == "add_trials"
      assert {:ok, ^again} = Study.trials(target)
    end

    test "arguments are checked in the caller" do
      study = start("add-args")

      for bad <- [
            [],
            :trials,
            [1],
            [%{params: %{x: 0.1}, value: "1"}],
            [%{params: %{x: 0.1}, value: 1.0, values: [1.0]}],
            [%{params: %{x: 0.1}, state: :running}],
            [%{params: %{x: 0.1}, values: [1, :a]}],
            [%{params: %{x: 0.1}, intermediate_values: %{-1 => 1.0}}],
            [%{params: %{x: 0.1}, constraints: []}],
            [%{params: %{x: 0.1}, user_attrs: [1]}],
            [%{params: "x"}],
            [%{parms: %{x: 0.1}}],
            [%Trial{number: 0, state: :running, params: %{"x" => 0.1}}],
            List.duplicate(%{value: 1.0}, 1001)
          ] do
        assert_raise ArgumentError, fn -> Study.add_trials(study, bad) end
      end

      assert_raise ArgumentError, fn -> Study.add_trials(study, [%{value: 1.0}], timeout: -1) end
    end

    test "in memory: added trials lost with the worker are reported; their numbers not reused" do
      study = start("add-lost", %{}, checkpoint_every: 0, checkpoint_interval: 600_000)
      {:ok, [0, 1]} = Study.add_trials(study, [%{params: %{x: 0.5}, value: 1.0}, %{value: 2.0}])
      TestSupport.kill_worker_and_wait(study)

      errors = Study.errors(study)
      assert [0, 1] == for(%Error{kind: :trial_lost} = e <- errors, do: e.data["number"])
      assert Enum.all?(errors, &(&1.method == "add_trials"))
      assert {:ok, [%Trial{number: 2}]} = Study.ask(study)
    end

    test "in memory: added trials in a checkpoint survive the worker" do
      study = start("add-kept", %{}, checkpoint_every: 1, checkpoint_spacing: 0)
      {:ok, [0]} = Study.add_trials(study, [%{params: %{x: 0.5, y: 1}, value: 1.5}])
      wait_for_snapshot(study)
      TestSupport.kill_worker_and_wait(study)
      assert [] == Study.errors(study)
      assert {:ok, %Trial{number: 0, values: [1.5]}} = Study.best_trial(study)
    end
  end

  describe "plot" do
    test "a plotly figure with data traces, a PNG and an SVG" do
      study = start("plot", %{metric_names: [:loss]})
      TestSupport.run_trials(study, 6, &(&1["x"] + &1["y"]))

      assert {:ok, %{"data" => [_ | _] = traces, "layout" => layout}} =
               Study.plot(study, :optimization_history, width: 500, height: 300)

      assert Enum.any?(traces, &(length(&1["x"] || []) == 6))
      assert layout["width"] == 500 and layout["height"] == 300

      assert {:ok, <<137, "PNG", 13, 10, 26, 10, _::binary>>} =
               Study.plot(study, "slice", format: :png, params: [:x], timeout: 60_000)

      assert {:ok, svg} = Study.plot(study, :edf, format: "svg", timeout: 60_000)
      assert svg =~ "<svg"
    end

    test "wrong combinations are the worker's invalid_params; arguments checked in the caller" do
      study = start("plot-args")
      TestSupport.run_trials(study, 3, &(&1["x"] + &1["y"]))

      assert {:error, %Error{kind: :invalid_params, method: "plot"}} =
               Study.plot(study, :pareto_front)

      for {kind, opts} <- [
            {:nope, []},
            {nil, []},
            {:slice, [format: :jpeg]},
            {:slice, [width: 99]},
            {:slice, [height: 4001]},
            {:slice, [params: []]},
            {:slice, [params: [1]]},
            {:slice, [params: [nil]]},
            {:slice, [objective: -1]},
            {:hypervolume_history, [reference_point: [1, :a]]},
            {:slice, [colour: :red]}
          ] do
        assert_raise ArgumentError, fn -> Study.plot(study, kind, opts) end
      end
    end
  end

  describe "leases" do
    test "ask with lease_s: lease_end on the asked and running trial; renew extends it" do
      study = start("lease")
      assert {:ok, [%Trial{number: n, lease_end: end0}]} = Study.ask(study, 1, lease_s: 30)
      assert is_binary(end0)
      {:ok, [%Trial{number: ^n, state: :running, lease_end: ^end0}]} = Study.trials(study)

      assert {:ok, end1} = Study.renew(study, n, lease_s: 600)
      assert DateTime.diff(time(end1), time(end0)) > 500
      {:ok, [%Trial{lease_end: ^end1}]} = Study.trials(study, states: [:running])
      # the new length is the trial's own from now on
      assert {:ok, end2} = Study.renew(study, n)
      assert DateTime.compare(time(end2), time(end1)) in [:gt, :eq]

      {:ok, _} = Study.tell(study, n, 0.5)
      assert {:error, %Error{kind: :trial_finished}} = Study.renew(study, n)
      {:ok, [%Trial{state: :complete, lease_end: nil}]} = Study.trials(study)

      {:ok, [%Trial{number: m, lease_end: nil}]} = Study.ask(study)

      assert {:error, %Error{kind: :invalid_params, method: "renew"}} = Study.renew(study, m)
      assert {:ok, _} = Study.renew(study, m, lease_s: 10)
    end

    test "a leased trial that is abandoned is failed; with retry its params are asked again" do
      study = start("lease-abandon")

      {:ok, [%Trial{number: n, params: params}]} = Study.ask(study, 1, lease_s: 0.3, retry: 1)

      TestSupport.wait_until(fn ->
        match?({:ok, [%Trial{state: :fail} | _]}, Study.trials(study))
      end)

      assert {:error, %Error{kind: :trial_finished, data: %{"state" => "fail"}}} =
               Study.tell(study, n, 1.0)

      assert {:ok, [%Trial{params: ^params} = retried]} = Study.ask(study)
      assert retried.number > n
      refute Map.has_key?(:sys.get_state(study).ledger.asked, n)
    end

    test "after a restart a lease-failed trial is finished, not lost" do
      study = start("lease-restart", %{}, checkpoint_every: 1, checkpoint_spacing: 0)
      {:ok, [%Trial{number: n}]} = Study.ask(study, 1, lease_s: 0.2)

      # wait through the raw method, so the client's ledger still has the trial handed out
      TestSupport.wait_until(fn ->
        {:ok, %{"trials" => [t | _]}} =
          Study.request(study, "trials", %{"study" => "lease-restart"})

        t["state"] == "fail"
      end)

      TestSupport.run_trials(study, 1, &(&1["x"] + &1["y"]))
      wait_for_snapshot(study)
      TestSupport.kill_worker_and_wait(study)

      assert {:error, %Error{kind: :trial_finished}} = Study.tell(study, n, 1.0)
      assert [] == Study.errors(study)
    end

    test "renew of a trial handed out by a worker that died (and lacks it) is :trial_lost" do
      study = start("lease-lost", %{}, checkpoint_every: 0, checkpoint_interval: 0)
      {:ok, [%Trial{number: n}]} = Study.ask(study, 1, lease_s: 60)
      TestSupport.kill_worker_and_wait(study)
      assert {:error, %Error{kind: :trial_lost, method: "renew"}} = Study.renew(study, n)
      assert {:ok, [%Trial{number: next}]} = Study.ask(study)
      assert next > n
    end

    test "lease and retry arguments are checked in the caller" do
      study = start("lease-args")

      for opts <- [
            [lease_s: 0],
            [lease_s: -1.0],
            [lease_s: 2_592_001],
            [lease_s: "10"],
            [retry: 1],
            [lease_s: 10, retry: 101],
            [lease_s: 10, retry: 1.0]
          ] do
        assert_raise ArgumentError, fn -> Study.ask(study, 1, opts) end
      end

      assert_raise ArgumentError, fn -> Study.renew(study, -1) end
      assert_raise ArgumentError, fn -> Study.renew(study, 0, lease_s: 0) end
      assert_raise ArgumentError, fn -> Study.renew(study, 0, lease: 1) end
    end
  end

  describe "trials paging and metric names" do
    test "offset and limit select one page in number order" do
      study = start("pages")
      TestSupport.run_trials(study, 7, &(&1["x"] + &1["y"]))

      numbers = fn opts ->
        with {:ok, ts} <- Study.trials(study, opts), do: Enum.map(ts, & &1.number)
      end

      assert [0, 1, 2] == numbers.(limit: 3)
      assert [3, 4, 5] == numbers.(offset: 3, limit: 3)
      assert [6] == numbers.(offset: 6, limit: 3)
      assert [] == numbers.(offset: 7)
      assert [5, 6] == numbers.(offset: 5, states: [:complete], datetimes: false)

      for bad <- [[offset: -1], [limit: 0], [limit: :all], [offset: 1.0]] do
        assert_raise ArgumentError, fn -> Study.trials(study, bad) end
      end
    end

    test "metric_names: given at create, returned by metric_names/2 and list" do
      named =
        start("named", %{directions: ["minimize", "maximize"], metric_names: [:loss, "acc"]})

      assert {:ok, ["loss", "acc"]} = Study.metric_names(named)
      {:ok, studies} = Study.list(named)
      assert %{"metric_names" => ["loss", "acc"]} = Enum.find(studies, &(&1["study"] == "named"))

      for _ <- 1..4 do
        {:ok, [t]} = Study.ask(named)
        {:ok, _} = Study.tell(named, t.number, [t.params["x"], t.params["y"]])
      end

      # figures of a multi-objective study: one objective, or the hypervolume
      assert {:ok, %{"data" => [_ | _]}} = Study.plot(named, :slice, objective: 1, params: ["x"])

      assert {:ok, %{"data" => [_ | _]}} =
               Study.plot(named, :hypervolume_history, reference_point: [2, -1])

      plain = start("unnamed")
      assert {:ok, nil} = Study.metric_names(plain, timeout: 5_000)

      for bad <- [[:loss], "loss", [:a, ""], [:a, 1], [:a, :b, :c]] do
        assert_raise ArgumentError, fn ->
          Study.start(
            %{name: "m", directions: ["minimize", "maximize"], metric_names: bad},
            @space
          )
        end
      end

      assert_raise ArgumentError, fn -> Study.start(%{name: "m", metric_names: []}, @space) end
    end
  end
end
