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
    "datetime_complete" => :datetime_complete
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
  end

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

  @doc "An asked trial: `%OptunaBridge.Trial{number: 0, state: :running, params: %{\"lr\" => 0.01}}`."
  @spec asked(map()) :: trial()
  def asked(%{"number" => number, "params" => params}),
    do: %OptunaBridge.Trial{number: number, params: params, state: :running}

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
