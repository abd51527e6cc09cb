defmodule OptunaBridge.ReportTest do
  @moduledoc "report/4: intermediate values and the pruner's verdict."
  use ExUnit.Case, async: true

  alias OptunaBridge.{Error, Study}

  @moduletag :report

  @space %{x: [type: "float", low: 0.0, high: 1.0]}

  test "intermediate values are stored; the median pruner prunes a clearly worse trial" do
    config = %{name: "pruned", sampler: %{type: "random", seed: 1}, pruner: %{type: "median"}}
    study = start_supervised!({Study, {config, @space, []}})

    {:ok, asked} = Study.ask(study, 6)
    [last | first_five] = Enum.reverse(asked)

    for t <- first_five do
      assert {:ok, false} = Study.report(study, t.number, 0, 1.0)
      assert {:ok, false} = Study.report(study, t.number, 1, 0.5)
      {:ok, _} = Study.tell(study, t.number, 0.5)
    end

    assert {:ok, true} = Study.report(study, last.number, 0, 100.0)
    assert {:ok, %{state: :pruned}} = Study.tell(study, last.number, nil, state: "pruned")

    {:ok, [first | _]} = Study.trials(study)
    assert first.intermediate_values == %{0 => 1.0, 1 => 0.5}
  end

  test "a report on an unknown trial is :trial_not_found" do
    study = start_supervised!({Study, {%{name: "r"}, @space, []}})

    assert {:error, %Error{kind: :trial_not_found, method: "report"}} =
             Study.report(study, 9, 0, 1.0)
  end
end
