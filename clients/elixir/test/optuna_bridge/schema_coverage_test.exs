defmodule OptunaBridge.SchemaCoverageTest do
  @moduledoc """
  Walks the protocol's JSON Schema (protocol/schema/, from `make schema`) and fails when a method
  or a params field has no Elixir function or option. The table below maps each method to the
  function that sends it and each of its params fields to where the user gives it; a method or
  field new in the schema fails this test until it is mapped here, or listed as deliberately
  unsupported (or set by the client itself) with the reason.
  """
  use ExUnit.Case, async: true

  alias OptunaBridge.{Study, TestSupport, Wire}

  # How a field is given:
  #   :study                  the study's name, added by the study process
  #   {:arg, name}            a positional argument of the function
  #   {:opt, key, value}      an option of the function (`value` is one it accepts)
  #   {:start_opt, key, value} an option of `Study.start_link/3`
  #   {:config, key, value}   a key of `Study.start_link/3`'s study config, sent as it is
  #   {:internal, why}        set by the client itself, not by the user
  #   {:unsupported, why}     deliberately not offered
  # `call` sends the method with these options to a study (the test uses one that is not running).
  defp methods do
    %{
      "add_trials" => %{
        call: &Study.add_trials(&1, [%{params: %{}, value: 1.0}], &2),
        fields: %{"study" => :study, "trials" => {:arg, "trials"}}
      },
      "artifact_get" => %{
        call: &Study.get_artifact(&1, "id", &2),
        fields: %{
          "study" => :study,
          "artifact_id" => {:arg, "artifact_id"},
          "offset" => {:internal, "get_artifact/3 fetches the parts in order"},
          "limit" => {:unsupported, "parts of the worker's default size are small enough"}
        }
      },
      "artifact_put" => %{
        call: &Study.put_artifact(&1, nil, "bytes", Keyword.put_new(&2, :name, "a.txt")),
        fields: %{
          "study" => :study,
          "number" => {:arg, "number"},
          "name" => {:opt, :name, "a.txt"},
          "content_type" => {:opt, :content_type, "text/plain"},
          "data" => {:internal, "put_artifact/4 sends the source in chunks (:chunk_size)"},
          "offset" => {:internal, "the chunk's offset"},
          "final" => {:internal, "set on the last chunk"},
          "sha256" => {:internal, "put_artifact/4 hashes the source"}
        }
      },
      "artifacts" => %{
        call: &Study.artifacts(&1, nil, &2),
        fields: %{"study" => :study, "number" => {:arg, "number"}}
      },
      "ask" => %{
        call: &Study.ask(&1, 1, &2),
        fields: %{
          "study" => :study,
          "n" => {:arg, "n"},
          "client" => {:start_opt, :client, "me"},
          "fixed_params" => {:opt, :fixed_params, %{x: 1}},
          "lease_s" => {:opt, :lease_s, 5},
          "retry" => {:opt, :retry, 1},
          "search_space" => {:opt, :search_space, %{x: [type: "float", low: 0, high: 1]}}
        }
      },
      "best" => %{
        call: &Study.best_trials/2,
        fields: %{"study" => :study, "datetimes" => {:opt, :datetimes, true}}
      },
      "copy_trials" => %{
        call: &Study.copy_trials(&1, "other", &2),
        fields: %{
          "to" => :study,
          "from" => {:arg, "from"},
          "states" => {:opt, :states, [:complete]},
          "limit" => {:opt, :limit, 10},
          "params_only" => {:opt, :params_only, true}
        }
      },
      "create" => %{
        call: fn _study, opts -> Study.start(%{name: "schema-coverage"}, %{}, opts) end,
        fields: %{
          "study" => {:config, :name, "s"},
          "search_space" => {:arg, "search_space"},
          "direction" => {:config, :direction, "maximize"},
          "directions" => {:config, :directions, ["minimize", "maximize"]},
          "load_if_exists" => {:config, :load_if_exists, true},
          "metric_names" => {:config, :metric_names, ["loss"]},
          "pruner" => {:config, :pruner, %{type: "median"}},
          "sampler" => {:config, :sampler, %{type: "tpe", seed: 1}},
          "stop" => {:config, :stop, %{max_trials: 10}},
          "user_attrs" => {:config, :user_attrs, %{"a" => 1}}
        }
      },
      "delete" => %{call: &Study.delete/2, fields: %{"study" => :study}},
      "enqueue" => %{
        call: &Study.enqueue(&1, %{x: 1}, &2),
        fields: %{
          "study" => :study,
          "params" => {:arg, "params"},
          "skip_if_exists" => {:opt, :skip_if_exists, true},
          "user_attrs" => {:opt, :user_attrs, %{"a" => 1}}
        }
      },
      "export" => %{call: &Study.export/2, fields: %{"study" => :study}},
      "import" => %{
        call: &Study.import(&1, %{}, &2),
        fields: %{
          "snapshot" => {:arg, "snapshot"},
          "study" => {:opt, :as, "other"},
          "overwrite" => {:opt, :overwrite, true}
        }
      },
      "importance" => %{
        call: &Study.importance/2,
        fields: %{
          "study" => :study,
          "params" => {:opt, :params, [:x]},
          "objective" => {:opt, :objective, 0}
        }
      },
      "list" => %{call: &Study.list/2, fields: %{}},
      "ping" => %{call: &Study.ping/2, fields: %{}},
      "plot" => %{
        call: &Study.plot(&1, :slice, &2),
        fields: %{
          "study" => :study,
          "kind" => {:arg, "kind"},
          "format" => {:opt, :format, :png},
          "params" => {:opt, :params, [:x]},
          "objective" => {:opt, :objective, 0},
          "width" => {:opt, :width, 300},
          "height" => {:opt, :height, 300},
          "reference_point" => {:opt, :reference_point, [1.0, 1.0]}
        }
      },
      "renew" => %{
        call: &Study.renew(&1, 0, &2),
        fields: %{
          "study" => :study,
          "number" => {:arg, "number"},
          "lease_s" => {:opt, :lease_s, 5}
        }
      },
      "report" => %{
        call: &Study.report(&1, 0, 1, 0.5, &2),
        fields: %{
          "study" => :study,
          "number" => {:arg, "number"},
          "step" => {:arg, "step"},
          "value" => {:arg, "value"}
        }
      },
      "set_attrs" => %{
        call: &Study.set_attrs(&1, %{a: 1}, &2),
        fields: %{
          "study" => :study,
          "user_attrs" => {:arg, "user_attrs"},
          "number" => {:opt, :number, 0}
        }
      },
      "set_stop" => %{
        call: &Study.set_stop(&1, nil, &2),
        fields: %{"study" => :study, "stop" => {:arg, "rules"}}
      },
      "shutdown" => %{
        unsupported:
          "the client ends a worker by closing its stdin (Study.stop/2, SharedWorker); a raw " <>
            "shutdown is Study.request(study, \"shutdown\")"
      },
      "tell" => %{
        call: &Study.tell(&1, 0, 1.0, &2),
        fields: %{
          "study" => :study,
          "number" => {:arg, "number"},
          "value" => {:arg, "value (a number)"},
          "values" => {:arg, "value (a list, several objectives)"},
          "state" => {:opt, :state, :complete},
          "user_attrs" => {:opt, :user_attrs, %{"a" => 1}},
          "skip_if_finished" => {:opt, :skip_if_finished, true},
          "constraints" => {:opt, :constraints, [0.0]}
        }
      },
      "trials" => %{
        call: &Study.trials/2,
        fields: %{
          "study" => :study,
          "states" => {:opt, :states, [:complete]},
          "datetimes" => {:opt, :datetimes, true},
          "offset" => {:opt, :offset, 0},
          "limit" => {:opt, :limit, 10}
        }
      }
    }
  end

  setup_all do
    schema = TestSupport.protocol_schema()

    params =
      Map.new(schema["methods"], fn {method, %{"params" => %{"$ref" => "#/$defs/" <> name}}} ->
        {method, schema["$defs"][name]["properties"] |> Map.keys() |> MapSet.new()}
      end)

    # a study that is not running: calls return an error, their options are still checked
    {:ok, dead} = Agent.start(fn -> nil end)
    Agent.stop(dead)
    %{params: params, dead: dead}
  end

  test "every method of the schema has an Elixir function, and the table names no other", %{
    params: params
  } do
    missing = Map.keys(params) -- Map.keys(methods())
    stale = Map.keys(methods()) -- Map.keys(params)

    assert missing == [],
           "methods in the protocol's schema with no Elixir function: #{inspect(missing)}; " <>
             "map each in #{Path.relative_to_cwd(__ENV__.file)} (or list it as unsupported, with the reason)"

    assert stale == [], "methods mapped here that the schema no longer has: #{inspect(stale)}"
  end

  test "every params field of every method is mapped to an argument, an option or a reason", %{
    params: params
  } do
    for {method, fields} <- params, %{fields: mapped} <- [methods()[method]] do
      mapped_fields = mapped |> Map.keys() |> MapSet.new()

      assert MapSet.subset?(fields, mapped_fields),
             "#{method}: params fields with no Elixir argument or option: " <>
               "#{inspect(MapSet.to_list(MapSet.difference(fields, mapped_fields)))}; map each " <>
               "in #{Path.relative_to_cwd(__ENV__.file)} (or list it as unsupported, with the reason)"

      assert MapSet.subset?(mapped_fields, fields),
             "#{method}: fields mapped here that the schema no longer has: " <>
               inspect(MapSet.to_list(MapSet.difference(mapped_fields, fields)))
    end
  end

  test "every option named in the table is accepted by its function", %{dead: dead} do
    for {method, %{call: call, fields: fields}} <- methods(),
        {_field, {:opt, key, value}} <- fields do
      refute unknown_option?(fn -> call.(dead, [{key, value}]) end),
             "#{method}: option #{inspect(key)} is not accepted"
    end
  end

  test "start options and study config keys named in the table reach the create params" do
    for {method, %{fields: fields}} <- methods(), {field, how} <- fields do
      case how do
        {:start_opt, key, value} ->
          start = fn ->
            Study.start(%{name: "schema-coverage"}, %{}, [{key, value}, python: "/nonexistent"])
          end

          refute unknown_option?(start), "#{method}: start option #{inspect(key)} is not accepted"

        {:config, key, value} ->
          create = Wire.create_params(%{:name => "s", key => value}, %{})
          assert Map.has_key?(create, field), "#{method}: config #{inspect(key)} is not sent"

        {kind, why} when kind in [:internal, :unsupported, :arg] ->
          assert is_binary(why) and why != ""

        {:opt, _key, _value} ->
          :ok

        :study ->
          :ok
      end
    end
  end

  test "an unsupported method says why" do
    for {_method, %{unsupported: why}} <- methods(), do: assert(why =~ ~r/\w+ \w+/)
  end

  defp unknown_option?(fun) do
    fun.()
    false
  rescue
    e in ArgumentError -> e.message =~ "unknown keys"
  end
end
