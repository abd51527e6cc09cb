defmodule OptunaBridge.MethodsTest do
  @moduledoc "Every protocol method has a typed function on OptunaBridge.Study (real worker)."
  use ExUnit.Case, async: true

  alias OptunaBridge.{Error, Study, TestSupport, Trial}

  @space [x: [type: "float", low: 0.0, high: 1.0], y: [type: "int", low: 0, high: 3]]

  defp start(name, opts \\ []) do
    {:ok, pid} =
      Study.start_link(%{name: name, sampler: %{type: "random", seed: 5}}, @space, opts)

    on_exit(fn -> Process.alive?(pid) && Study.stop(pid) end)
    :ok = Study.await_ready(pid)
    pid
  end

  test "enqueue: the next ask hands out the enqueued params" do
    study = start("enqueue")
    assert {:ok, true} = Study.enqueue(study, %{x: 0.25, y: 2}, user_attrs: %{"why" => "seed"})
    assert {:ok, [%Trial{params: %{"x" => 0.25, "y" => 2}} = t]} = Study.ask(study)
    {:ok, _} = Study.tell(study, t.number, 1.0)
    assert {:ok, false} = Study.enqueue(study, [x: 0.25, y: 2], skip_if_exists: true)
    {:ok, [first]} = Study.trials(study)
    assert first.user_attrs == %{"why" => "seed"}
    assert_raise ArgumentError, fn -> Study.enqueue(study, %{x: 1}, skip_if_exists: "yes") end
  end

  test "set_attrs on the study and on a running trial" do
    study = start("attrs")
    assert :ok = Study.set_attrs(study, %{team: "a"})
    {:ok, [t]} = Study.ask(study)
    assert :ok = Study.set_attrs(study, [epoch: 3], number: t.number)
    {:ok, [running]} = Study.trials(study, states: [:running], datetimes: true)
    assert running.user_attrs == %{"epoch" => 3}
    assert is_binary(running.datetime_start)
    assert_raise ArgumentError, fn -> Study.set_attrs(study, %{a: 1}, number: -1) end
  end

  test "importance, export, import (under another name), list, ping, raw request" do
    study = start("imp")
    TestSupport.run_trials(study, 12, &(&1["x"] + &1["y"]))
    assert {:ok, %{"x" => fx, "y" => fy}} = Study.importance(study)
    assert is_float(fx) and is_float(fy)
    assert {:ok, %{"x" => _} = only_x} = Study.importance(study, params: [:x], objective: 0)
    assert map_size(only_x) == 1
    assert_raise ArgumentError, fn -> Study.importance(study, objective: -1) end

    assert {:ok, snapshot} = Study.export(study)

    assert {:ok, %{"study" => "imp-copy", "n_trials" => 12}} =
             Study.import(study, snapshot, as: "imp-copy")

    assert {:error, %Error{kind: :study_exists}} = Study.import(study, snapshot, as: "imp-copy")

    assert {:ok, %{"n_trials" => 12}} =
             Study.import(study, snapshot, as: "imp-copy", overwrite: true, timeout: 10_000)

    assert {:ok, studies} = Study.list(study)
    assert ["imp", "imp-copy"] == studies |> Enum.map(& &1["study"]) |> Enum.sort()
    assert :ok = Study.ping(study)
    assert {:ok, %{"pong" => true}} = Study.request(study, "ping")
    assert_raise ArgumentError, fn -> Study.request(study, :ping, %{}) end
    assert_raise ArgumentError, fn -> Study.import(study, snapshot, as: "") end
  end

  test "delete is explicit; the deprecated tell_sync is tell" do
    study = start("del")
    {:ok, [t]} = Study.ask(study)
    assert {:ok, %Trial{state: :complete}} = apply(Study, :tell_sync, [study, t.number, 0.5])
    assert :ok = Study.delete(study)
    assert {:ok, []} = Study.list(study)
    assert :ok = Study.stop(study)
    assert :ok = Study.stop(study)
  end

  test "ask with fixed params and a search space for this call" do
    study = start("fixed")

    assert {:ok, [%Trial{params: %{"x" => 0.5, "z" => z}}]} =
             Study.ask(study, 1,
               fixed_params: %{x: 0.5},
               search_space: %{z: [type: "categorical", choices: ["a", "b"]]}
             )

    assert z in ["a", "b"]
    assert_raise ArgumentError, fn -> Study.ask(study, 1, fixed_params: [1]) end
    assert_raise ArgumentError, fn -> Study.trials(study, datetimes: 1) end
    assert_raise ArgumentError, fn -> Study.trials(study, states: :complete) end
  end

  test "start options are checked in the caller" do
    for bad <- [
          [timeout: -1],
          [checkpoint_every: :x],
          [framing: :json],
          [worker_args: "--x"],
          [python: :py],
          [forward_logs: 1],
          [env: [1]],
          [keep: false]
        ] do
      assert_raise ArgumentError, fn -> Study.start(%{name: "o"}, @space, bad) end
    end

    assert_raise ArgumentError, fn -> Study.start(%{name: ""}, @space) end
    assert_raise ArgumentError, fn -> Study.start(%{name: "o"}, "space") end
    assert_raise ArgumentError, fn -> Study.start(%{name: "o"}, [{"x", 1}, :y]) end
    assert_raise ArgumentError, fn -> Study.start(%{name: "o"}, %{1 => [type: "int"]}) end
    assert_raise ArgumentError, fn -> Study.start(%{name: "o"}, %{x: [1, 2]}) end
    assert_raise ArgumentError, fn -> Study.start(%{name: "o"}, %{x: "float"}) end
    assert_raise ArgumentError, fn -> Study.start(%{name: "o"}, @space, :opts) end
    assert_raise ArgumentError, fn -> Study.start(%{name: "o"}, @space, [1]) end
    study = start("tell-args", keep: true)
    assert_raise ArgumentError, fn -> Study.tell(study, 0, [1, :a]) end
    assert_raise ArgumentError, fn -> Study.tell(study, 0, 1.0, skip_if_finished: 1) end
    assert_raise ArgumentError, fn -> Study.stop(study, delete: 1) end
  end

  test "calls to a study that is gone answer :worker_stopped" do
    study = start("gone")
    :ok = Study.stop(study)
    assert {:error, %Error{kind: :worker_stopped}} = Study.ask(study, 1, timeout: 1_000)
  end
end

defmodule OptunaBridge.TrialTest do
  use ExUnit.Case, async: true

  alias OptunaBridge.{Trial, Wire}

  test "Access: known fields by atom, new wire fields by string; updates" do
    trial = Wire.trial(%{"number" => 1, "params" => %{"x" => 1}, "brand_new" => 2})
    assert trial[:params] == %{"x" => 1}
    assert trial["brand_new"] == 2
    assert trial[:extra] == nil
    assert trial[:nope] == nil
    assert Trial.value(trial) == nil
    assert Trial.value(%Trial{number: 0, values: [3.0]}) == 3.0

    assert {%{"x" => 1}, %Trial{params: %{"x" => 2}}} =
             Access.get_and_update(trial, :params, fn p -> {p, %{"x" => 2}} end)

    assert {2, %Trial{extra: %{"brand_new" => 3}}} =
             Access.get_and_update(trial, "brand_new", &{&1, 3})

    assert {%{"x" => 1}, %Trial{params: nil}} = Access.pop(trial, :params)
    assert {1, %Trial{number: nil}} = Access.get_and_update(trial, :number, fn _ -> :pop end)

    assert Wire.trial(%{"number" => 0, "intermediate_values" => %{"x" => 1}}).intermediate_values ==
             %{"x" => 1}
  end
end
