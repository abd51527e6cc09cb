defmodule OptunaBridge.Study.ParamsTest do
  @moduledoc "Each call's wire params built from its arguments in the caller: no process."
  use ExUnit.Case, async: true

  alias OptunaBridge.Study.Params

  test "ask: n, a lease with retries, fixed params, a search space" do
    assert Params.ask(2, []) == %{"n" => 2}
    assert Params.ask(1, lease_s: 5) == %{"n" => 1, "lease_s" => 5}
    assert Params.ask(1, lease_s: 5, retry: 3) == %{"n" => 1, "lease_s" => 5, "retry" => 3}
    assert Params.ask(1, fixed_params: %{x: 1})["fixed_params"] == %{"x" => 1}

    assert %{"search_space" => %{"x" => _}} =
             Params.ask(1, search_space: %{x: [type: "float", low: 0, high: 1]})

    for {n, opts} <- [
          {0, []},
          {1, [retry: 1]},
          {1, [lease_s: 5, retry: 101]},
          {1, [fixed_params: [1]]},
          {1, [nope: 1]}
        ],
        do: assert_raise(ArgumentError, fn -> Params.ask(n, opts) end)
  end

  test "renew and report check the trial number, step and value" do
    assert Params.renew(3, []) == %{"number" => 3}
    assert Params.renew(3, lease_s: 9) == %{"number" => 3, "lease_s" => 9}
    assert_raise ArgumentError, fn -> Params.renew(-1, []) end

    assert Params.report(1, 2, 0.5, timeout: 10) == %{"number" => 1, "step" => 2, "value" => 0.5}
    assert_raise ArgumentError, fn -> Params.report(1, -2, 0.5, []) end
    assert_raise ArgumentError, fn -> Params.report(1, 2, "x", []) end
  end

  test "plot: a known kind, a format, params, objective, size, reference point" do
    assert Params.plot(:slice, []) == %{"kind" => "slice", "format" => "plotly"}

    assert Params.plot("contour", format: :png, params: [:x, "y"], objective: 1, width: 300) ==
             %{
               "kind" => "contour",
               "format" => "png",
               "params" => ["x", "y"],
               "objective" => 1,
               "width" => 300
             }

    assert Params.plot(:hypervolume_history, reference_point: [1, 2])["reference_point"] == [1, 2]
    assert "timeline" in Params.plot_kinds()

    for {kind, opts} <- [
          {:nope, []},
          {nil, []},
          {:slice, [format: :gif]},
          {:slice, [params: [""]]},
          {:slice, [width: 99]},
          {:slice, [reference_point: [:a]]}
        ],
        do: assert_raise(ArgumentError, fn -> Params.plot(kind, opts) end)
  end

  test "best and trials: datetimes, states, a page" do
    assert Params.best([]) == %{}
    assert Params.best(datetimes: true) == %{"datetimes" => true}
    assert_raise ArgumentError, fn -> Params.best(datetimes: 1) end

    assert Params.trials(states: [:complete], offset: 2, limit: 3, datetimes: false) == %{
             "states" => ["complete"],
             "offset" => 2,
             "limit" => 3,
             "datetimes" => false
           }

    assert_raise ArgumentError, fn -> Params.trials(limit: 0) end
  end

  test "enqueue, set_attrs, importance and import take their options onto the wire" do
    assert Params.enqueue(%{x: 1}, user_attrs: %{"a" => 1}, skip_if_exists: true) == %{
             "params" => %{"x" => 1},
             "user_attrs" => %{"a" => 1},
             "skip_if_exists" => true
           }

    assert_raise ArgumentError, fn -> Params.enqueue(%{x: 1}, skip_if_exists: 1) end

    assert Params.set_attrs(%{a: 1}, []) == %{"user_attrs" => %{"a" => 1}}
    assert Params.set_attrs(%{a: 1}, number: 4)["number"] == 4
    assert_raise ArgumentError, fn -> Params.set_attrs(%{a: 1}, number: -4) end

    assert Params.importance(params: [:x], objective: 0) == %{"params" => ["x"], "objective" => 0}
    assert_raise ArgumentError, fn -> Params.importance(objective: -1) end

    assert Params.import(%{}, as: "b", overwrite: true) ==
             %{"snapshot" => %{}, "study" => "b", "overwrite" => true}

    assert_raise ArgumentError, fn -> Params.import(%{}, as: "") end
  end
end
