defmodule OptunaBridge.StopRules do
  @moduledoc """
  Stop rules: the study says when it is done (the worker's `stop` / `set_stop`).

  Rules are a map (or keyword list) with any of `:target`, `:patience`, `:min_delta`,
  `:max_trials`, `:max_seconds` (single-objective studies only). Give them at start in the study
  config (`stop: %{target: 0.01, max_trials: 200}`) or change them with
  `OptunaBridge.Study.set_stop/3`. Once a rule holds, `ask` answers
  `{:error, %OptunaBridge.Error{kind: :study_stopped, data: %{"rule" => ...}}}`, tell replies carry
  the rule in the trial's `extra["stopped"]`, and `OptunaBridge.optimize/3` ends cleanly with
  `{:ok, best, %{rule: rule, detail: detail}}`.
  """

  alias OptunaBridge.{Error, Study, Telemetry, Wire}

  @keys %{
    target: "target",
    patience: "patience",
    min_delta: "min_delta",
    max_trials: "max_trials",
    max_seconds: "max_seconds"
  }

  @typedoc "Why a study is stopped: the rule that holds and what made it hold."
  @type stopped :: %{rule: String.t(), detail: map()}

  @doc """
  Replaces the study's stop rules; `nil` clears them (asking resumes). Returns
  `{:ok, %{"stop" => rules | nil, "stopped" => why | nil}}`. Option: `:timeout`.
  """
  @spec set_stop(Study.study(), map() | keyword() | nil, keyword()) ::
          {:ok, map()} | {:error, Error.t()}
  def set_stop(study, rules, opts \\ []) do
    opts = Wire.validate_options!(opts, [:timeout])
    Study.study_request(study, "set_stop", %{"stop" => rules!(rules)}, opts)
  end

  @doc """
  Rules as the wire's object (string keys); raises `ArgumentError` on an unknown rule or a
  value that is not a number.

      iex> OptunaBridge.StopRules.rules!(target: 0.5, max_trials: 10)
      %{"target" => 0.5, "max_trials" => 10}
  """
  @spec rules!(map() | keyword() | nil) :: map() | nil
  def rules!(nil), do: nil

  def rules!(rules) when is_map(rules) or is_list(rules) do
    Map.new(rules, fn
      {key, value} when is_number(value) ->
        case Map.fetch(@keys, key) do
          {:ok, name} -> {name, value}
          :error when is_binary(key) -> {known!(key), value}
          :error -> Wire.bad_option!(key, value)
        end

      {key, value} ->
        Wire.bad_option!(key, value)

      other ->
        raise ArgumentError, "stop rules are {rule, number} pairs, got: #{inspect(other)}"
    end)
  end

  def rules!(other),
    do: raise(ArgumentError, "stop rules must be a map, a keyword list or nil: #{inspect(other)}")

  defp known!(name) do
    if name in Map.values(@keys),
      do: name,
      else: raise(ArgumentError, "unknown stop rule #{inspect(name)}")
  end

  @doc "The stop in an error or a tell reply (`nil` when there is none)."
  @spec stopped(term()) :: stopped() | nil
  def stopped({:error, %Error{kind: :study_stopped, data: data}}),
    do: %{rule: data["rule"], detail: data["detail"] || %{}}

  def stopped({:ok, %{extra: %{"stopped" => %{"rule" => rule} = why}}}),
    do: %{rule: rule, detail: why["detail"] || %{}}

  def stopped(_), do: nil

  @doc """
  Emits `[:optuna_bridge, :study, :stopped]` (metadata `study`: the study's name, as in every
  event; `rule`, `detail`).
  """
  @spec emit(String.t() | nil, stopped()) :: :ok
  def emit(study, %{rule: rule, detail: detail}),
    do:
      Telemetry.execute([:optuna_bridge, :study, :stopped], %{count: 1}, %{
        study: study,
        rule: rule,
        detail: detail
      })
end
