defmodule OptunaBridge.Wire do
  @moduledoc """
  Translation between the shapes an Elixir caller writes and the protocol's params and results.

  Callers write study configs and search spaces with atom keys and keyword lists
  (`%{lr: [type: "float", low: 1.0e-5, high: 0.1, log: true]}`); the wire wants JSON objects.
  Results come back with string keys; trials are returned with atom keys for the protocol's
  known fields (a fixed table, never `String.to_atom/1`) and their parameters keyed by name
  strings, as the user named them.
  """

  alias OptunaBridge.JSON

  @type trial :: OptunaBridge.Trial.t()

  @trial_fields %{
    "number" => :number,
    "state" => :state,
    "params" => :params,
    "values" => :values,
    "user_attrs" => :user_attrs,
    "intermediate_values" => :intermediate_values,
    "datetime_start" => :datetime_start,
    "datetime_complete" => :datetime_complete,
    "lease_end" => :lease_end
  }

  @states %{
    "running" => :running,
    "waiting" => :waiting,
    "complete" => :complete,
    "pruned" => :pruned,
    "fail" => :fail
  }

  @doc """
  The `create` params for a study config and a search space. `name` becomes `study`; every other
  key (`direction`, `directions`, `sampler`, `pruner`, `load_if_exists`, `user_attrs`) is passed
  on as it is, so the worker's validation (which rejects unknown fields) applies.

      iex> OptunaBridge.Wire.create_params(%{name: "s", direction: "maximize"},
      ...>   %{x: [type: "float", low: 0, high: 1]})
      %{"study" => "s", "direction" => "maximize",
        "search_space" => %{"x" => %{"type" => "float", "low" => 0, "high" => 1}}}
  """
  @spec create_params(map() | keyword(), map() | keyword()) :: map()
  def create_params(study_config, search_space) do
    config = object(study_config)
    {name, config} = Map.pop(config, "name")

    unless is_binary(name) and name != "",
      do:
        raise(
          ArgumentError,
          "the study config needs a name (a non-empty string), got: #{inspect(name)}"
        )

    config
    |> Map.put("study", name)
    |> Map.put("search_space", search_space(search_space))
    |> metric_names!()
    |> stop_rules!()
  end

  defp stop_rules!(%{"stop" => nil} = config), do: Map.delete(config, "stop")

  defp stop_rules!(%{"stop" => rules} = config),
    do: %{config | "stop" => OptunaBridge.StopRules.rules!(rules)}

  defp stop_rules!(config), do: config

  # `metric_names:` (Optuna's set_metric_names): one non-empty name (string or atom) per objective.
  defp metric_names!(%{"metric_names" => names} = config) do
    objectives =
      case config do
        %{"directions" => directions} when is_list(directions) -> length(directions)
        _ -> 1
      end

    valid =
      is_list(names) and length(names) == objectives and
        Enum.all?(names, &((is_binary(&1) and &1 != "") or name_atom?(&1)))

    unless valid,
      do:
        raise(
          ArgumentError,
          "metric_names must be one non-empty name per objective (#{objectives}), got: " <>
            inspect(names)
        )

    %{config | "metric_names" => Enum.map(names, &to_string/1)}
  end

  defp metric_names!(config), do: config

  @doc """
  A search space as the wire's `{name: distribution}` object. A keyword list keeps its order
  (a seeded sampler draws parameters in search-space order); a map is sent in map order.
  """
  @spec search_space(map() | keyword()) :: map() | JSON.Ordered.t()
  def search_space(space) when is_list(space) do
    unless Enum.all?(space, &match?({_, _}, &1)),
      do: raise(ArgumentError, "a search space is a map or keyword list, got: #{inspect(space)}")

    %JSON.Ordered{pairs: Enum.map(space, fn {name, dist} -> {key!(name), object(dist)} end)}
  end

  def search_space(space) when is_map(space),
    do: Map.new(space, fn {name, dist} -> {key!(name), object(dist)} end)

  def search_space(other),
    do: raise(ArgumentError, "a search space is a map or keyword list, got: #{inspect(other)}")

  @doc """
  A map or keyword list as a JSON object with string keys (one level); anything else raises
  `ArgumentError`.
  """
  @spec object(map() | keyword()) :: map()
  def object(kv) when is_map(kv), do: Map.new(kv, fn {k, v} -> {key!(k), v} end)

  def object(kv) when is_list(kv) do
    if Keyword.keyword?(kv) or Enum.all?(kv, &match?({k, _} when is_binary(k), &1)),
      do: Map.new(kv, fn {k, v} -> {key!(k), v} end),
      else: raise(ArgumentError, "expected a map or a keyword list, got: #{inspect(kv)}")
  end

  def object(other),
    do: raise(ArgumentError, "expected a map or a keyword list, got: #{inspect(other)}")

  defp key!(k) when is_binary(k), do: k
  defp key!(k) when is_atom(k) and k not in [nil, true, false], do: Atom.to_string(k)
  defp key!(k), do: raise(ArgumentError, "keys must be atoms or strings, got: #{inspect(k)}")

  @tell_options [:state, :user_attrs, :skip_if_finished, :constraints]
  @tell_states %{
    "complete" => "complete",
    "pruned" => "pruned",
    "fail" => "fail",
    complete: "complete",
    pruned: "pruned",
    fail: "fail"
  }

  @doc """
  `tell` params (without `study`): a number is `value`, a non-empty list `values`, `nil` neither
  (pruned/fail). Options: `:state` (`"complete" | "pruned" | "fail"`, or the atom),
  `:user_attrs` (a map), `:skip_if_finished` (a boolean), `:constraints` (a list of numbers,
  feasible when all are <= 0). Anything else raises `ArgumentError`: a typo must not drop an
  option silently, and a bad value must fail in the caller, not in the study process.

      iex> OptunaBridge.Wire.tell_params(3, 0.5, constraints: [-1.0])
      %{"number" => 3, "value" => 0.5, "constraints" => [-1.0]}
  """
  @spec tell_params(non_neg_integer(), number() | [number()] | nil, keyword()) :: map()
  def tell_params(number, value, opts) do
    unless is_integer(number) and number >= 0,
      do:
        raise(
          ArgumentError,
          "trial number must be a non-negative integer, got: #{inspect(number)}"
        )

    opts = validate_options!(opts, @tell_options)
    base = Map.merge(%{"number" => number}, value_params(value))

    Enum.reduce(opts, base, fn {key, v}, acc ->
      Map.put(acc, Atom.to_string(key), tell_option(key, v))
    end)
  end

  defp value_params(value) when is_number(value), do: %{"value" => value}
  defp value_params(nil), do: %{}

  defp value_params([_ | _] = values) do
    if Enum.all?(values, &is_number/1),
      do: %{"values" => values},
      else: raise(ArgumentError, "values must all be numbers, got: #{inspect(values)}")
  end

  defp value_params(other),
    do:
      raise(
        ArgumentError,
        "value must be a number, a non-empty list of numbers or nil, got: #{inspect(other)}"
      )

  defp tell_option(:state, state) do
    Map.get(@tell_states, state) ||
      raise ArgumentError,
            "state must be \"complete\", \"pruned\" or \"fail\", got: #{inspect(state)}"
  end

  defp tell_option(:user_attrs, attrs) when is_map(attrs), do: attrs
  defp tell_option(:skip_if_finished, flag) when is_boolean(flag), do: flag

  defp tell_option(:constraints, [_ | _] = cs) do
    if Enum.all?(cs, &is_number/1), do: cs, else: bad_option!(:constraints, cs)
  end

  defp tell_option(key, value), do: bad_option!(key, value)

  @added_keys [:params, :value, :values, :state, :user_attrs, :intermediate_values, :constraints]

  @doc """
  `add_trials` params (without `study`): 1..1000 trials evaluated outside the worker, each a map
  or keyword list with `:params` (a map), `:value` (a number) or `:values` (a non-empty list),
  `:state` (`:complete` default, `:pruned`, `:fail`, or the string), `:user_attrs` (a map),
  `:intermediate_values` (`%{step => number}`, steps non-negative integers) and `:constraints`
  (a non-empty list of numbers). An `%OptunaBridge.Trial{}` (e.g. from another study's `trials/2`)
  is taken as such a trial. Anything else raises `ArgumentError`.

      iex> OptunaBridge.Wire.add_trials_params([%{params: %{x: 0.5}, value: 1.0}])
      %{"trials" => [%{"params" => %{"x" => 0.5}, "value" => 1.0}]}
  """
  @spec add_trials_params([map() | keyword() | trial()]) :: map()
  def add_trials_params(trials) when is_list(trials) and trials != [] and length(trials) <= 1000,
    do: %{"trials" => Enum.map(trials, &added_trial/1)}

  def add_trials_params(other),
    do:
      raise(
        ArgumentError,
        "add_trials needs a list of 1 to 1000 trials, got: #{inspect(other, limit: 5)}"
      )

  defp added_trial(%OptunaBridge.Trial{state: state} = trial)
       when state in [:complete, :pruned, :fail] do
    [params: trial.params || %{}, state: state, user_attrs: trial.user_attrs || %{}]
    |> then(fn kv -> if state == :complete, do: [{:values, trial.values} | kv], else: kv end)
    |> then(fn kv ->
      case trial.intermediate_values do
        iv when is_map(iv) and map_size(iv) > 0 -> [{:intermediate_values, iv} | kv]
        _ -> kv
      end
    end)
    |> added_trial()
  end

  defp added_trial(%OptunaBridge.Trial{} = trial),
    do:
      raise(
        ArgumentError,
        "only finished trials can be added, got trial #{trial.number} in state #{inspect(trial.state)}"
      )

  defp added_trial(trial) when is_map(trial) or is_list(trial) do
    kv = if is_map(trial), do: Map.to_list(trial), else: trial

    unless Keyword.keyword?(kv) and Enum.all?(kv, fn {k, _} -> k in @added_keys end),
      do:
        raise(
          ArgumentError,
          "a trial to add takes #{inspect(@added_keys)}, got: #{inspect(trial)}"
        )

    if Keyword.has_key?(kv, :value) and Keyword.has_key?(kv, :values),
      do: raise(ArgumentError, "give value or values, not both: #{inspect(trial)}")

    Map.new(kv, fn {key, v} -> {Atom.to_string(key), added_field(key, v)} end)
  end

  defp added_trial(other),
    do: raise(ArgumentError, "a trial to add is a map or keyword list, got: #{inspect(other)}")

  defp added_field(:params, params), do: object(params)
  defp added_field(:value, v) when is_number(v), do: v
  defp added_field(:values, vs) when is_list(vs) and vs != [], do: value_params(vs)["values"]
  defp added_field(:state, state), do: tell_option(:state, state)
  defp added_field(:user_attrs, attrs) when is_map(attrs), do: attrs
  defp added_field(:constraints, cs), do: tell_option(:constraints, cs)

  defp added_field(:intermediate_values, iv) when is_map(iv) do
    Map.new(iv, fn
      {step, v} when is_integer(step) and step >= 0 and is_number(v) ->
        {Integer.to_string(step), v}

      _ ->
        bad_option!(:intermediate_values, iv)
    end)
  end

  defp added_field(key, v), do: bad_option!(key, v)

  @doc "Whether `term` is an atom usable as a name (`:loss`; not `nil`, `true` or `false`)."
  @spec name_atom?(term()) :: boolean()
  def name_atom?(term), do: is_atom(term) and term not in [nil, true, false]

  @doc "A lease length in seconds (`lease_s:` of `ask` and `renew`): a number in (0, 2592000]."
  @spec lease_s!(term()) :: number()
  def lease_s!(s) when is_number(s) and s > 0 and s <= 2_592_000, do: s
  def lease_s!(other), do: bad_option!(:lease_s, other)

  @doc """
  Checks a keyword list of options against the allowed keys (`Keyword.validate!/2` semantics, no
  defaults): an unknown or repeated key, or a list that is not a keyword list, raises `ArgumentError`.
  """
  @spec validate_options!(term(), [atom()]) :: keyword()
  def validate_options!(opts, allowed) when is_list(opts) do
    unless Keyword.keyword?(opts),
      do: raise(ArgumentError, "options must be a keyword list, got: #{inspect(opts)}")

    Keyword.validate!(opts, allowed)
  end

  def validate_options!(opts, _allowed),
    do: raise(ArgumentError, "options must be a keyword list, got: #{inspect(opts)}")

  @doc "Raises the `ArgumentError` for option `key` with a value of the wrong shape."
  @spec bad_option!(atom(), term()) :: no_return()
  def bad_option!(key, value),
    do: raise(ArgumentError, "invalid value for option #{inspect(key)}: #{inspect(value)}")

  @doc "`states:` for `trials`: state names as strings or atoms."
  @spec states!(term()) :: [String.t()]
  def states!(states) when is_list(states) do
    Enum.map(states, fn state ->
      name = if is_atom(state) and not is_nil(state), do: Atom.to_string(state), else: state

      if name in ["running", "waiting", "complete", "pruned", "fail"],
        do: name,
        else: bad_option!(:states, states)
    end)
  end

  def states!(other), do: bad_option!(:states, other)

  @doc """
  An asked trial: `%OptunaBridge.Trial{number: 0, state: :running, params: %{"lr" => 0.01}}`,
  with `lease_end` when it was asked with a lease.
  """
  @spec asked(map()) :: trial()
  def asked(%{"number" => number, "params" => params} = wire),
    do: %OptunaBridge.Trial{
      number: number,
      params: params,
      state: :running,
      lease_end: wire["lease_end"],
      extra: if(wire["resumed"] == true, do: %{"resumed" => true}, else: %{})
    }

  @doc """
  A trial object from `best`/`trials`/`tell` as an `OptunaBridge.Trial`: the protocol's known
  fields by a fixed table (never `String.to_atom/1`), anything else kept in `extra`.
  """
  @spec trial(map()) :: trial()
  def trial(wire) when is_map(wire) do
    Enum.reduce(wire, %OptunaBridge.Trial{number: wire["number"]}, fn {k, v}, trial ->
      case Map.fetch(@trial_fields, k) do
        {:ok, key} -> Map.replace!(trial, key, field(key, v))
        :error -> %{trial | extra: Map.put(trial.extra, k, v)}
      end
    end)
  end

  defp field(:state, state), do: Map.get(@states, state, state)

  defp field(:intermediate_values, values) when is_map(values) do
    Map.new(values, fn {step, v} ->
      case Integer.parse(step) do
        {int, ""} -> {int, v}
        _ -> {step, v}
      end
    end)
  end

  defp field(_key, v), do: v
end
