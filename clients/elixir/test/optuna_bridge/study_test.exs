defmodule OptunaBridge.StudyTest do
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog

  alias OptunaBridge.{Error, Study, Worker}
  alias OptunaBridge.TestSupport

  @space %{x: [type: "float", low: -10.0, high: 10.0], y: [type: "int", low: -3, high: 3]}

  defp start_study(name, opts \\ []) do
    config = %{name: name, direction: "minimize", sampler: %{type: "tpe", seed: 42}}
    TestSupport.start_study!(config, @space, opts)
  end

  defp objective(%{"x" => x, "y" => y}), do: (x - 2) ** 2 + y * y

  for framing <- [:line, :packet4] do
    @framing framing
    test "50 ask/tell trials on a quadratic, then the best trial (#{framing})" do
      study = start_study("quadratic", framing: @framing)

      for _ <- 1..50 do
        {:ok, [%{number: number, params: params}]} = Study.ask(study)
        :ok = Study.tell_async(study, number, objective(params))
      end

      assert {:ok, best} = Study.best_trial(study)
      assert %{state: :complete, values: [value], params: %{"x" => x, "y" => y}} = best
      assert value == objective(best.params)
      assert value < 1.0, "TPE should get near x=2, y=0 in 50 trials, got #{inspect(best)}"
      assert is_float(x) and is_integer(y)

      assert {:ok, trials} = Study.trials(study)
      assert length(trials) == 50
      assert Enum.map(trials, & &1.number) == Enum.to_list(0..49)
      assert Enum.all?(trials, &(&1.state == :complete))
      assert Study.errors(study) == []
    end
  end

  test "asks pipelined from several processes get distinct trials" do
    study = start_study("pipelined", framing: :packet4)

    asked =
      1..20
      |> Task.async_stream(fn _ -> Study.ask(study, 3) end,
        max_concurrency: 10,
        timeout: :infinity
      )
      |> Enum.flat_map(fn {:ok, {:ok, trials}} -> trials end)

    numbers = Enum.map(asked, & &1.number)
    assert Enum.sort(numbers) == Enum.to_list(0..59)

    told =
      asked
      |> Task.async_stream(fn t -> Study.tell(study, t.number, objective(t.params)) end,
        timeout: :infinity,
        max_concurrency: 10
      )
      |> Enum.map(fn {:ok, {:ok, %{state: :complete, number: n}}} -> n end)

    assert Enum.sort(told) == Enum.to_list(0..59)
    assert {:ok, trials} = Study.trials(study, states: ["complete"])
    assert length(trials) == 60
  end

  test "tell_sync with options: pruned and fail states, user_attrs" do
    study = start_study("states")
    {:ok, [a, b, c]} = Study.ask(study, 3)

    assert {:ok, %{state: :complete, values: [1.5]}} =
             Study.tell(study, a.number, 1.5, user_attrs: %{epochs: 3})

    assert {:ok, %{state: :pruned}} = Study.tell(study, b.number, nil, state: "pruned")

    assert {:ok, %{state: :fail, values: nil}} = Study.tell(study, c.number, nil, state: "fail")

    assert {:ok, [best]} = Study.best_trials(study)
    assert best.user_attrs == %{"epochs" => 3}
  end

  describe "errors" do
    test "a tell_sync of an unknown trial is :trial_not_found" do
      study = start_study("errors")

      assert {:error, %Error{kind: :trial_not_found, code: -32003, method: "tell", data: data}} =
               Study.tell(study, 99, 1.0)

      assert data["number"] == 99
    end

    test "a failed tell (a notification) is logged and kept for errors/1" do
      study = start_study("errors-cast")

      log =
        capture_log(fn ->
          :ok = Study.tell_async(study, 7, 1.0)

          assert [%Error{kind: :trial_not_found, method: "tell"}] =
                   TestSupport.wait_until(fn ->
                     Study.errors(study) |> Enum.take(1) |> TestSupport.nonempty()
                   end)
        end)

      assert log =~ "trial_not_found"
    end

    test "best before any completed trial is :no_completed_trials" do
      study = start_study("no-best")

      assert {:error, %Error{kind: :no_completed_trials, method: "best"}} =
               Study.best_trial(study)
    end

    test "a bad search space is :invalid_params from start_link itself; the caller lives" do
      space = %{x: [type: "float", low: 1.0, high: 0.0]}

      # linked: before, {:ok, pid} came first and the study's stop then killed this process
      assert {:error, %Error{kind: :invalid_params, data: %{"field" => field}}} =
               Study.start_link(%{name: "bad"}, space)

      assert field == "$.params.search_space.x.low"

      for {bad, field} <- [
            {[type: "float", low: 0.0, high: 1.0, log: true], "x.low"},
            {[type: "float", low: 1.0, high: 2.0, step: 0], "x.step"},
            {[type: "float", low: 1.0, high: 2.0, step: 0.5, log: true], "x.step"},
            {[type: "int", low: 1, high: 2, step: 0], "x.step"},
            {[type: "int", low: 1, high: 8, step: 2, log: true], "x.step"},
            {[type: "int", low: 1.5, high: 2], "x.low"},
            {[type: "int"], "x.low"},
            {[type: "categorical", choices: []], "x.choices"},
            {[type: "categorical", choices: [1, 1]], "x.choices"},
            {[type: "uniform"], "x.type"},
            {[low: 1], "x.type"}
          ] do
        assert {:error, %Error{kind: :invalid_params, data: %{"field" => got}}} =
                 Study.start(%{name: "bad"}, %{x: bad})

        assert got == "$.params.search_space." <> field
      end

      # what the worker accepts passes: 1, 1.0 and true are three choices
      {:ok, ok} = Study.start(%{name: "ok"}, x: [type: "categorical", choices: [1, 1.0, true]])
      assert :ok = Study.await_ready(ok)
      :ok = Study.stop(ok)
    end

    test "an unknown study option is :invalid_params naming the field" do
      {:ok, study} = Study.start(%{name: "bad", colour: "red"}, @space)

      assert {:error, %Error{kind: :invalid_params, data: %{"field" => "$.params.colour"}}} =
               Study.await_ready(study)
    end

    test "a missing interpreter is :start_failed from start_link itself; the caller lives" do
      assert {:error, %Error{kind: :start_failed, message: message}} =
               Study.start_link(%{name: "s"}, @space, python: "/nonexistent/python")

      assert message =~ "/nonexistent/python"
    end

    test "a call without a reply in time is :timeout, and the study goes on" do
      study = start_study("slow", timeout: 300)
      %{os_pid: os_pid} = Study.info(study)
      TestSupport.signal(os_pid, "STOP")
      assert {:error, %Error{kind: :timeout, method: "ask"}} = Study.ask(study)
      TestSupport.signal(os_pid, "CONT")
      # the worker answers the late ask first: this one's deadline is not the 300 ms under test
      assert {:ok, [%{number: 1}]} = Study.ask(study, 1, timeout: 60_000)
    end
  end

  for framing <- [:line, :packet4] do
    @framing framing
    test "a 1 MiB frame both ways (#{framing})" do
      study = start_study("big", framing: @framing)
      blob = String.duplicate("é\"x", 262_144)
      assert byte_size(blob) >= 1_048_576

      {:ok, [trial]} = Study.ask(study)
      assert {:ok, _} = Study.tell(study, trial.number, 0.5, user_attrs: %{blob: blob})
      assert {:ok, [stored]} = Study.trials(study)
      assert stored.user_attrs["blob"] == blob
    end
  end

  test "stop/1 leaves no worker process" do
    study = start_study("clean")
    %{os_pid: os_pid} = Study.info(study)
    assert Worker.os_alive?(os_pid)
    assert :ok = Study.stop(study)
    refute Process.alive?(study)
    refute Worker.os_alive?(os_pid)
  end

  test "stop/1 kills a worker that does not exit within the grace period" do
    # the baseline of this run: a worker that does exit stops in `normal` (its exit, no grace)
    {normal, :ok} = :timer.tc(fn -> Study.stop(start_study("unstuck", grace: 200)) end)
    study = start_study("stuck", grace: 200)
    %{os_pid: os_pid} = Study.info(study)
    TestSupport.signal(os_pid, "STOP")
    {micros, :ok} = :timer.tc(fn -> Study.stop(study) end)
    refute Worker.os_alive?(os_pid)
    # the grace, then the kill: far from the 30 s a stop that waited for the exit would take
    assert micros < 200_000 + 4 * normal + 2_000_000
  end

  @tag :tmp_dir
  test "stopping keeps the study in a durable storage; only delete: true deletes it", %{
    tmp_dir: dir
  } do
    args = ["--storage", "sqlite:///#{dir}/keep.db"]
    config = %{name: "kept", load_if_exists: true}

    {:ok, study} = Study.start_link(config, @space, worker_args: args)
    {:ok, [t]} = Study.ask(study)
    {:ok, _} = Study.tell(study, t.number, 1.0)
    :ok = Study.stop(study)

    {:ok, again} = Study.start_link(config, @space, worker_args: args)
    assert {:ok, [%{number: 0, values: [1.0]}]} = Study.trials(again)
    :ok = Study.stop(again, delete: true)

    {:ok, third} = Study.start_link(config, @space, worker_args: args)
    assert {:ok, []} = Study.trials(third)
    assert :ok = Study.delete(third)
    assert {:error, %Error{kind: :study_not_found}} = Study.trials(third)
    :ok = Study.stop(third)
  end
end
