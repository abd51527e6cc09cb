defmodule OptunaBridge.Pool do
  @moduledoc """
  A fixed set of `OptunaBridge.SharedWorker`s; each study is placed on one by its name
  (`:erlang.phash2(name, size)`), so the same name always lands on the same worker and a
  restarted study finds its in-storage study there.

      children = [
        {OptunaBridge.Pool, name: MyApp.OptunaPool, worker_args: ["--storage", "sqlite:///o.db"]},
        {OptunaBridge.Study, {%{name: "a"}, space, [pool: MyApp.OptunaPool]}}
      ]

  Options: `:name` (required), `:size` (default `System.schedulers_online()`), and the options of
  `OptunaBridge.SharedWorker` (`:python`, `:worker_args`, `:env`, `:cd`, ...), given to each
  worker. Workers spawn their Python process when the first study attaches, so an idle pool
  costs no Python processes. Placement is by name, not by load: give busy studies their own
  worker (`OptunaBridge.Study` without `pool:`) if one should not wait behind others.
  """

  use Supervisor

  alias OptunaBridge.SharedWorker

  @doc "Starts the pool supervisor."
  @spec start_link(keyword()) :: Supervisor.on_start()
  def start_link(opts) do
    name = Keyword.fetch!(opts, :name)
    size = Keyword.get(opts, :size, System.schedulers_online())

    unless is_atom(name) and name != nil,
      do: raise(ArgumentError, "a pool needs name: (an atom)")

    unless is_integer(size) and size >= 1, do: OptunaBridge.Wire.bad_option!(:size, size)

    worker_opts =
      OptunaBridge.Wire.validate_options!(
        Keyword.drop(opts, [:name, :size]),
        SharedWorker.options() -- [:name]
      )

    Supervisor.start_link(__MODULE__, {name, size, worker_opts}, name: name)
  end

  @impl true
  def init({name, size, worker_opts}) do
    :persistent_term.put({__MODULE__, name}, size)

    children =
      for i <- 0..(size - 1) do
        SharedWorker.child_spec(
          [id: {SharedWorker, i}, name: worker_name(name, i)] ++ worker_opts
        )
      end

    Supervisor.init(children, strategy: :one_for_one)
  end

  @doc "The shared worker of `pool` that serves the study `study_name`."
  @spec worker(atom(), String.t()) :: GenServer.server()
  def worker(pool, study_name) do
    size = :persistent_term.get({__MODULE__, pool}, 1)
    worker_name(pool, :erlang.phash2(study_name, size))
  end

  @doc "The pool's size."
  @spec size(atom()) :: pos_integer()
  def size(pool), do: :persistent_term.get({__MODULE__, pool})

  # `size` atoms per pool, made from the pool's own (atom) name: bounded.
  defp worker_name(pool, i), do: Module.concat(pool, "Worker#{i}")
end
