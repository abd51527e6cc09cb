defmodule OptunaBridge.Study.Params do
  @moduledoc false
  # The wire params of each `OptunaBridge.Study` call, built from its arguments and options in the
  # caller. Pure: a bad argument or option raises `ArgumentError` here, before any message is
  # sent. Unit-tested in test/optuna_bridge/study_params_test.exs.

  alias OptunaBridge.Wire

  @plot_kinds ~w(optimization_history intermediate_values param_importances parallel_coordinate
                 contour slice edf rank timeline pareto_front hypervolume_history)

  @doc "The figure kinds `OptunaBridge.Study.plot/3` draws."
  @spec plot_kinds() :: [String.t()]
  def plot_kinds, do: @plot_kinds

  @doc "`ask`: `n` and the options `:fixed_params`, `:search_space`, `:lease_s`, `:retry`."
  @spec ask(pos_integer(), keyword()) :: map()
  def ask(n, opts) do
    unless is_integer(n) and n >= 1,
      do: raise(ArgumentError, "n must be a positive integer, got: #{inspect(n)}")

    opts =
      Wire.validate_options!(opts, [:fixed_params, :search_space, :lease_s, :retry, :timeout])

    params = %{"n" => n}

    params =
      case {Keyword.fetch(opts, :lease_s), Keyword.fetch(opts, :retry)} do
        {:error, :error} ->
          params

        {{:ok, lease_s}, :error} ->
          Map.put(params, "lease_s", Wire.lease_s!(lease_s))

        {{:ok, lease_s}, {:ok, retry}} when is_integer(retry) and retry in 0..100 ->
          Map.merge(params, %{"lease_s" => Wire.lease_s!(lease_s), "retry" => retry})

        {:error, {:ok, _retry}} ->
          raise ArgumentError, "retry: needs lease_s: (a trial is retried when its lease ends)"

        {_, {:ok, retry}} ->
          Wire.bad_option!(:retry, retry)
      end

    params =
      case Keyword.fetch(opts, :fixed_params) do
        {:ok, fixed} when is_map(fixed) -> Map.put(params, "fixed_params", Wire.object(fixed))
        {:ok, fixed} -> Wire.bad_option!(:fixed_params, fixed)
        :error -> params
      end

    case Keyword.fetch(opts, :search_space) do
      {:ok, space} -> Map.put(params, "search_space", Wire.search_space(space))
      :error -> params
    end
  end

  @doc "The options of `tell` besides `:timeout`."
  @spec tell_keys() :: [atom()]
  def tell_keys, do: [:state, :user_attrs, :skip_if_finished, :constraints]

  @doc "`renew`: the trial's number and the option `:lease_s`."
  @spec renew(non_neg_integer(), keyword()) :: map()
  def renew(number, opts) do
    unless is_integer(number) and number >= 0,
      do:
        raise(
          ArgumentError,
          "trial number must be a non-negative integer, got: #{inspect(number)}"
        )

    opts = Wire.validate_options!(opts, [:lease_s, :timeout])
    params = %{"number" => number}

    case Keyword.fetch(opts, :lease_s) do
      {:ok, lease_s} -> Map.put(params, "lease_s", Wire.lease_s!(lease_s))
      :error -> params
    end
  end

  @doc "`plot`: the kind (atom or string) and the options of `OptunaBridge.Study.plot/3`."
  @spec plot(atom() | String.t(), keyword()) :: map()
  def plot(kind, opts) do
    kind =
      if is_atom(kind) and kind not in [nil, true, false], do: Atom.to_string(kind), else: kind

    unless kind in @plot_kinds,
      do:
        raise(
          ArgumentError,
          "plot kind must be one of #{Enum.join(@plot_kinds, ", ")}, got: #{inspect(kind)}"
        )

    opts =
      Wire.validate_options!(opts, [
        :format,
        :params,
        :objective,
        :width,
        :height,
        :reference_point,
        :timeout
      ])

    Enum.reduce(opts, %{"kind" => kind, "format" => "plotly"}, fn
      {:format, f}, acc when f in [:plotly, :png, :svg, "plotly", "png", "svg"] ->
        Map.put(acc, "format", to_string(f))

      {:params, [_ | _] = names}, acc ->
        unless Enum.all?(names, &((is_binary(&1) and &1 != "") or Wire.name_atom?(&1))),
          do: Wire.bad_option!(:params, names)

        Map.put(acc, "params", Enum.map(names, &to_string/1))

      {:objective, i}, acc when is_integer(i) and i >= 0 ->
        Map.put(acc, "objective", i)

      {size, px}, acc when size in [:width, :height] and is_integer(px) and px in 100..4000 ->
        Map.put(acc, Atom.to_string(size), px)

      {:reference_point, [_ | _] = point}, acc ->
        unless Enum.all?(point, &is_number/1), do: Wire.bad_option!(:reference_point, point)
        Map.put(acc, "reference_point", point)

      {:timeout, _}, acc ->
        acc

      {key, v}, _acc ->
        Wire.bad_option!(key, v)
    end)
  end

  @doc "`report`: a trial number, a step (non-negative integers) and a number."
  @spec report(non_neg_integer(), non_neg_integer(), number(), keyword()) :: map()
  def report(number, step, value, opts) do
    unless is_integer(number) and number >= 0 and is_integer(step) and step >= 0 and
             is_number(value),
           do:
             raise(
               ArgumentError,
               "report needs a trial number, a step (non-negative integers) and a number, got: " <>
                 inspect({number, step, value})
             )

    Wire.validate_options!(opts, [:timeout])
    %{"number" => number, "step" => step, "value" => value}
  end

  @doc "`best`: the option `:datetimes`."
  @spec best(keyword()) :: map()
  def best(opts) do
    opts = Wire.validate_options!(opts, [:datetimes, :timeout])
    datetimes(%{}, opts)
  end

  @doc "`trials`: the options `:states`, `:datetimes`, `:offset`, `:limit`."
  @spec trials(keyword()) :: map()
  def trials(opts) do
    opts = Wire.validate_options!(opts, [:states, :datetimes, :offset, :limit, :timeout])

    params =
      Enum.reduce(opts, %{}, fn
        {:states, states}, acc -> Map.put(acc, "states", Wire.states!(states))
        {:offset, n}, acc when is_integer(n) and n >= 0 -> Map.put(acc, "offset", n)
        {:limit, n}, acc when is_integer(n) and n >= 1 -> Map.put(acc, "limit", n)
        {key, _}, acc when key in [:datetimes, :timeout] -> acc
        {key, v}, _acc -> Wire.bad_option!(key, v)
      end)

    datetimes(params, opts)
  end

  defp datetimes(params, opts) do
    case Keyword.fetch(opts, :datetimes) do
      {:ok, flag} when is_boolean(flag) -> Map.put(params, "datetimes", flag)
      {:ok, other} -> Wire.bad_option!(:datetimes, other)
      :error -> params
    end
  end

  @doc "`enqueue`: the trial's params and the options `:user_attrs`, `:skip_if_exists`."
  @spec enqueue(map() | keyword(), keyword()) :: map()
  def enqueue(params, opts) do
    opts = Wire.validate_options!(opts, [:user_attrs, :skip_if_exists, :timeout])
    wire = %{"params" => Wire.object(params)}

    Enum.reduce(opts, wire, fn
      {:user_attrs, attrs}, acc when is_map(attrs) -> Map.put(acc, "user_attrs", attrs)
      {:skip_if_exists, flag}, acc when is_boolean(flag) -> Map.put(acc, "skip_if_exists", flag)
      {:timeout, _}, acc -> acc
      {key, v}, _acc -> Wire.bad_option!(key, v)
    end)
  end

  @doc "`set_attrs`: the user attrs and the option `:number`."
  @spec set_attrs(map() | keyword(), keyword()) :: map()
  def set_attrs(user_attrs, opts) do
    opts = Wire.validate_options!(opts, [:number, :timeout])
    wire = %{"user_attrs" => Wire.object(user_attrs)}

    case opts[:number] do
      nil -> wire
      n when is_integer(n) and n >= 0 -> Map.put(wire, "number", n)
      other -> Wire.bad_option!(:number, other)
    end
  end

  @doc "`importance`: the options `:params`, `:objective`."
  @spec importance(keyword()) :: map()
  def importance(opts) do
    opts = Wire.validate_options!(opts, [:params, :objective, :timeout])

    Enum.reduce(opts, %{}, fn
      {:params, [_ | _] = names}, acc -> Map.put(acc, "params", Enum.map(names, &to_string/1))
      {:objective, i}, acc when is_integer(i) and i >= 0 -> Map.put(acc, "objective", i)
      {:timeout, _}, acc -> acc
      {key, v}, _acc -> Wire.bad_option!(key, v)
    end)
  end

  @doc "`import`: the snapshot and the options `:as`, `:overwrite`."
  @spec import(map(), keyword()) :: map()
  def import(snapshot, opts) do
    opts = Wire.validate_options!(opts, [:as, :overwrite, :timeout])
    wire = %{"snapshot" => snapshot}

    Enum.reduce(opts, wire, fn
      {:as, name}, acc when is_binary(name) and name != "" -> Map.put(acc, "study", name)
      {:overwrite, flag}, acc when is_boolean(flag) -> Map.put(acc, "overwrite", flag)
      {:timeout, _}, acc -> acc
      {key, v}, _acc -> Wire.bad_option!(key, v)
    end)
  end
end
