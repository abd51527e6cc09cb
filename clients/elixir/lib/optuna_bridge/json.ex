defmodule OptunaBridge.JSON do
  @moduledoc """
  A small, dependency-free JSON (RFC 8259) encoder and decoder.

  OTP 25 ships no JSON module and this client must not need Hex, so it carries its own. It is
  complete for what the wire needs and strict about what it accepts:

    * decoding: objects become maps with string keys, arrays lists, integers stay integers
      (`1`), numbers with a fraction or an exponent become floats (`1.0`, `1e3`), `null` is
      `nil`. `\\uXXXX` escapes, surrogate pairs included, become UTF-8. Anything else — invalid
      UTF-8, control characters in strings, lone surrogates, trailing garbage, numbers too large
      for a double (`1e400`) — is `{:error, %OptunaBridge.JSON.DecodeError{}}`.
    * encoding: maps (atom, string or integer keys; two keys with the same string form are
      an error), `OptunaBridge.JSON.Ordered` objects, lists, strings, integers, floats, booleans, `nil`
      and other atoms (as strings). Floats use the shortest form that round-trips
      (`:erlang.float_to_binary(f, [:short])`). A tuple, a pid or invalid UTF-8 is
      `{:error, %OptunaBridge.JSON.EncodeError{}}`.
  """

  defmodule DecodeError do
    @moduledoc "Why a JSON text was rejected, and the byte offset where it went wrong."
    defexception [:message, :position]
    @type t :: %__MODULE__{message: String.t(), position: non_neg_integer()}
  end

  defmodule Ordered do
    @moduledoc """
    A JSON object whose member order is kept: `pairs` in order, encoded in that order. Maps
    have no order of their own (small ones iterate sorted by key).
    """
    defstruct pairs: []
    @type t :: %__MODULE__{pairs: [{String.t() | atom(), term()}]}
  end

  defmodule EncodeError do
    @moduledoc "A term that has no JSON form (a tuple, a pid, a non-UTF-8 binary...)."
    defexception [:message, :term]
    @type t :: %__MODULE__{message: String.t(), term: term()}
  end

  @type value ::
          nil
          | boolean()
          | number()
          | String.t()
          | [value()]
          | %{optional(String.t()) => value()}
          | __MODULE__.Ordered.t()

  # ---------------------------------------------------------------------------------- decoding

  @doc """
  Decodes one JSON text (surrounding whitespace allowed).

  Option `objects: :ordered` decodes objects as `%OptunaBridge.JSON.Ordered{}` (their members
  in text order) instead of maps, for when the order matters to the receiver: a seeded sampler
  draws parameters in search-space order, so a replayed conversation must keep it.

      iex> OptunaBridge.JSON.decode(~s({"a":[1,2.5,"\\\\u00e9"],"b":null}))
      {:ok, %{"a" => [1, 2.5, "é"], "b" => nil}}
  """
  @spec decode(binary(), keyword()) :: {:ok, value()} | {:error, DecodeError.t()}
  def decode(text, opts \\ []) when is_binary(text) do
    if builtin?() and Keyword.get(opts, :objects, :maps) == :maps,
      do: builtin_decode(text),
      else: bundled_decode(text, opts)
  end

  @doc """
  Whether Elixir's own `JSON` module (Elixir 1.18+) is there: then `decode/2` uses it for maps
  (it is faster); ordered objects and encoding stay with this module, which keeps member order
  and rejects duplicate keys.
  """
  @spec builtin?() :: boolean()
  def builtin? do
    # Asked once per VM and kept: on Elixir < 1.18 `Code.ensure_loaded?(JSON)` searches the
    # whole code path for a module that is not there, ~0.5 ms, and `decode/2` asks on every frame.
    case :persistent_term.get({__MODULE__, :builtin?}, nil) do
      nil ->
        builtin? = Code.ensure_loaded?(JSON) and function_exported?(JSON, :decode, 1)
        :persistent_term.put({__MODULE__, :builtin?}, builtin?)
        builtin?

      builtin? ->
        builtin?
    end
  end

  # `apply/3`: on Elixir < 1.18 there is no `JSON` module and a direct call would warn.
  defp builtin_decode(text) do
    case apply(JSON, :decode, [text]) do
      {:ok, value} -> {:ok, value}
      {:error, reason} -> {:error, builtin_error(reason)}
    end
  end

  defp builtin_error({:unexpected_end, position}),
    do: %DecodeError{message: "unexpected end of input", position: position}

  defp builtin_error({:invalid_byte, position, _byte}),
    do: %DecodeError{message: "invalid byte", position: position}

  defp builtin_error({:unexpected_sequence, position, _seq}),
    do: %DecodeError{message: "unexpected sequence", position: position}

  defp builtin_error(other), do: %DecodeError{message: inspect(other), position: 0}

  defp bundled_decode(text, opts) do
    # `ctx` travels through the parser: the whole text (for error positions) and the options.
    ctx = {text, Keyword.get(opts, :objects, :maps)}

    if String.valid?(text) do
      {value, rest} = value(skip_ws(text), ctx)

      case skip_ws(rest) do
        "" -> {:ok, value}
        more -> fail("unexpected data after the JSON value", more, ctx)
      end
    else
      {:error, %DecodeError{message: "input is not valid UTF-8", position: invalid_at(text, 0)}}
    end
  catch
    {:json_error, message, position} ->
      {:error, %DecodeError{message: message, position: position}}
  end

  @doc "Like `decode/1` but raises `OptunaBridge.JSON.DecodeError`."
  @spec decode!(binary(), keyword()) :: value()
  def decode!(text, opts \\ []) do
    case decode(text, opts) do
      {:ok, value} -> value
      {:error, error} -> raise error
    end
  end

  defp invalid_at(<<c::utf8, rest::binary>>, n), do: invalid_at(rest, n + byte_size(<<c::utf8>>))
  defp invalid_at(_, n), do: n

  defp skip_ws(<<c, rest::binary>>) when c in [?\s, ?\t, ?\n, ?\r], do: skip_ws(rest)
  defp skip_ws(rest), do: rest

  defp value(<<?{, rest::binary>>, ctx), do: object(skip_ws(rest), ctx, [])
  defp value(<<?[, rest::binary>>, ctx), do: array(skip_ws(rest), ctx, [])
  defp value(<<?", rest::binary>>, ctx), do: string(rest, ctx, [])
  defp value(<<"true", rest::binary>>, _ctx), do: {true, rest}
  defp value(<<"false", rest::binary>>, _ctx), do: {false, rest}
  defp value(<<"null", rest::binary>>, _ctx), do: {nil, rest}
  defp value(<<c, _::binary>> = rest, ctx) when c == ?- or c in ?0..?9, do: number(rest, ctx)
  defp value("", ctx), do: fail("expected a value", "", ctx)
  defp value(rest, ctx), do: fail("unexpected character", rest, ctx)

  defp object(<<?}, rest::binary>>, ctx, []), do: {finish_object([], ctx), rest}

  defp object(<<?", rest::binary>>, ctx, acc) do
    {key, rest} = string(rest, ctx, [])

    rest =
      case skip_ws(rest) do
        <<?:, rest::binary>> -> skip_ws(rest)
        other -> fail("expected ':' after an object key", other, ctx)
      end

    {val, rest} = value(rest, ctx)
    acc = [{key, val} | acc]

    case skip_ws(rest) do
      <<?,, rest::binary>> -> object(skip_ws(rest), ctx, acc)
      <<?}, rest::binary>> -> {finish_object(Enum.reverse(acc), ctx), rest}
      other -> fail("expected ',' or '}' in an object", other, ctx)
    end
  end

  defp object(rest, ctx, _acc), do: fail("expected a string key in an object", rest, ctx)

  defp finish_object(pairs, {_text, :ordered}), do: %__MODULE__.Ordered{pairs: pairs}
  defp finish_object(pairs, _ctx), do: Map.new(pairs)

  defp array(<<?], rest::binary>>, _ctx, []), do: {[], rest}

  defp array(rest, ctx, acc) do
    {val, rest} = value(rest, ctx)

    case skip_ws(rest) do
      <<?,, rest::binary>> -> array(skip_ws(rest), ctx, [val | acc])
      <<?], rest::binary>> -> {Enum.reverse([val | acc]), rest}
      other -> fail("expected ',' or ']' in an array", other, ctx)
    end
  end

  # A string is read as runs of plain bytes (sliced out of the input, not copied byte by byte)
  # separated by escapes; the whole input was checked for UTF-8 validity up front.
  defp string(rest, ctx, acc) do
    n = plain_run(rest, 0)
    <<run::binary-size(n), rest::binary>> = rest
    acc = if n == 0, do: acc, else: [acc | run]

    case rest do
      <<?", rest::binary>> -> {IO.iodata_to_binary(acc), rest}
      <<?\\, rest::binary>> -> escape(rest, ctx, acc)
      "" -> fail("unterminated string", rest, ctx)
      _control -> fail("control character in a string", rest, ctx)
    end
  end

  defp plain_run(<<c, rest::binary>>, n) when c != ?" and c != ?\\ and c >= 0x20,
    do: plain_run(rest, n + 1)

  defp plain_run(_, n), do: n

  @simple_escapes %{
    ?" => ?",
    ?\\ => ?\\,
    ?/ => ?/,
    ?b => ?\b,
    ?f => ?\f,
    ?n => ?\n,
    ?r => ?\r,
    ?t => ?\t
  }

  defp escape(<<?u, rest::binary>>, ctx, acc) do
    {cp, rest} = hex4(rest, ctx)

    cond do
      cp in 0xD800..0xDBFF ->
        case rest do
          <<?\\, ?u, low_rest::binary>> ->
            {low, rest} = hex4(low_rest, ctx)

            if low in 0xDC00..0xDFFF do
              cp = 0x10000 + Bitwise.bsl(cp - 0xD800, 10) + (low - 0xDC00)
              string(rest, ctx, [acc, <<cp::utf8>>])
            else
              fail("high surrogate not followed by a low surrogate", low_rest, ctx)
            end

          _ ->
            fail("lone high surrogate in \\u escape", rest, ctx)
        end

      cp in 0xDC00..0xDFFF ->
        fail("lone low surrogate in \\u escape", rest, ctx)

      true ->
        string(rest, ctx, [acc, <<cp::utf8>>])
    end
  end

  defp escape(<<c, rest::binary>> = here, ctx, acc) do
    case Map.fetch(@simple_escapes, c) do
      {:ok, char} -> string(rest, ctx, [acc, char])
      :error -> fail("invalid escape in a string", here, ctx)
    end
  end

  defp escape("", ctx, _acc), do: fail("unterminated string", "", ctx)

  defguardp is_hex(c) when c in ?0..?9 or c in ?a..?f or c in ?A..?F

  defp hex4(<<a, b, c, d, rest::binary>>, _ctx)
       when is_hex(a) and is_hex(b) and is_hex(c) and is_hex(d) do
    {String.to_integer(<<a, b, c, d>>, 16), rest}
  end

  defp hex4(rest, ctx), do: fail("invalid \\u escape", rest, ctx)

  defp number(text, ctx) do
    {int_part, rest} = take_int_part(text, ctx)
    {frac, rest} = take_fraction(rest, ctx)
    {exp, rest} = take_exponent(rest, ctx)

    value =
      if frac == "" and exp == "" do
        String.to_integer(int_part)
      else
        to_float(int_part, if(frac == "", do: ".0", else: frac), exp, text, ctx)
      end

    {value, rest}
  end

  defp take_int_part(<<?-, rest::binary>>, ctx) do
    {digits, rest} = take_int_digits(rest, ctx)
    {"-" <> digits, rest}
  end

  defp take_int_part(rest, ctx), do: take_int_digits(rest, ctx)

  defp take_int_digits(<<?0, rest::binary>>, _ctx), do: {"0", rest}

  defp take_int_digits(<<c, _::binary>> = rest, ctx) when c in ?1..?9 do
    digits(rest, ctx)
  end

  defp take_int_digits(rest, ctx), do: fail("expected a digit", rest, ctx)

  defp take_fraction(<<?., rest::binary>>, ctx) do
    {ds, rest} = digits(rest, ctx)
    {"." <> ds, rest}
  end

  defp take_fraction(rest, _ctx), do: {"", rest}

  defp take_exponent(<<e, sign, rest::binary>>, ctx) when e in [?e, ?E] and sign in [?+, ?-] do
    {ds, rest} = digits(rest, ctx)
    {<<?e, sign>> <> ds, rest}
  end

  defp take_exponent(<<e, rest::binary>>, ctx) when e in [?e, ?E] do
    {ds, rest} = digits(rest, ctx)
    {"e" <> ds, rest}
  end

  defp take_exponent(rest, _ctx), do: {"", rest}

  defp digits(text, ctx) do
    n = digit_run(text, 0)
    if n == 0, do: fail("expected a digit", text, ctx)
    <<ds::binary-size(n), rest::binary>> = text
    {ds, rest}
  end

  defp digit_run(<<c, rest::binary>>, n) when c in ?0..?9, do: digit_run(rest, n + 1)
  defp digit_run(_, n), do: n

  defp to_float(int_part, frac, exp, text, ctx) do
    :erlang.binary_to_float(int_part <> frac <> exp)
  rescue
    ArgumentError -> fail("number out of range for a double", text, ctx)
  end

  defp fail(message, "", {text, _}),
    do: throw({:json_error, "unexpected end of input: " <> message, byte_size(text)})

  defp fail(message, rest, {text, _}),
    do: throw({:json_error, message, byte_size(text) - byte_size(rest)})

  # ---------------------------------------------------------------------------------- encoding

  @doc """
  Encodes a term as a compact JSON text.

      iex> OptunaBridge.JSON.encode(%{lr: 1.0e-5, tags: ["a\\nb"], n: 3, ok: true})
      {:ok, ~s({"lr":1.0e-5,"n":3,"ok":true,"tags":["a\\\\nb"]})}
  """
  @spec encode(term()) :: {:ok, binary()} | {:error, EncodeError.t()}
  def encode(term) do
    {:ok, IO.iodata_to_binary(encode_value(term))}
  catch
    {:json_encode_error, message, bad} -> {:error, %EncodeError{message: message, term: bad}}
  end

  @doc "Like `encode/1` but raises `OptunaBridge.JSON.EncodeError`."
  @spec encode!(term()) :: binary()
  def encode!(term) do
    case encode(term) do
      {:ok, text} -> text
      {:error, error} -> raise error
    end
  end

  defp encode_value(nil), do: "null"
  defp encode_value(true), do: "true"
  defp encode_value(false), do: "false"
  defp encode_value(atom) when is_atom(atom), do: encode_string(Atom.to_string(atom))
  defp encode_value(int) when is_integer(int), do: Integer.to_string(int)
  defp encode_value(float) when is_float(float), do: :erlang.float_to_binary(float, [:short])
  defp encode_value(bin) when is_binary(bin), do: encode_string(bin)
  defp encode_value([]), do: "[]"

  defp encode_value(list) when is_list(list) do
    [?[, Enum.map_intersperse(list, ?,, &encode_value/1), ?]]
  end

  defp encode_value(%__MODULE__.Ordered{pairs: pairs}), do: encode_object(pairs)
  defp encode_value(map) when is_map(map) and not is_struct(map), do: encode_object(map)

  defp encode_value(other), do: throw({:json_encode_error, "no JSON form for this term", other})

  # Keys are written as strings; two keys that become the same string (`%{:a => 2, "a" => 1}`,
  # `%{1 => x, "1" => y}`) are an error: JSON parsers keep one of them silently, so one value
  # would be lost without anyone being told.
  defp encode_object(pairs) do
    {members, _seen} =
      Enum.map_reduce(pairs, %{}, fn {k, v}, seen ->
        name = key(k)

        if Map.has_key?(seen, name),
          do: throw({:json_encode_error, "duplicate object key #{inspect(name)}", k})

        {[encode_string(name), ?:, encode_value(v)], Map.put(seen, name, true)}
      end)

    [?{, Enum.intersperse(members, ?,), ?}]
  end

  defp key(k) when is_binary(k), do: k
  defp key(k) when is_atom(k) and k not in [nil, true, false], do: Atom.to_string(k)
  defp key(k) when is_integer(k), do: Integer.to_string(k)

  defp key(k),
    do: throw({:json_encode_error, "object keys must be strings, atoms or integers", k})

  defp encode_string(s) do
    unless String.valid?(s), do: throw({:json_encode_error, "string is not valid UTF-8", s})
    [?", escape_string(s, s, 0, 0, []), ?"]
  end

  # Walks the string once, copying the longest runs that need no escaping as sub-binaries.
  defp escape_string(<<c, rest::binary>>, s, start, len, acc)
       when c >= 0x20 and c != ?" and c != ?\\ do
    escape_string(rest, s, start, len + 1, acc)
  end

  defp escape_string(<<c, rest::binary>>, s, start, len, acc) do
    acc = [acc, binary_part(s, start, len), escape_char(c)]
    escape_string(rest, s, start + len + 1, 0, acc)
  end

  defp escape_string(<<>>, s, start, len, acc), do: [acc, binary_part(s, start, len)]

  defp escape_char(?"), do: "\\\""
  defp escape_char(?\\), do: "\\\\"
  defp escape_char(?\n), do: "\\n"
  defp escape_char(?\r), do: "\\r"
  defp escape_char(?\t), do: "\\t"
  defp escape_char(?\b), do: "\\b"
  defp escape_char(?\f), do: "\\f"

  defp escape_char(c) do
    hex = c |> Integer.to_string(16) |> String.pad_leading(4, "0")
    "\\u" <> hex
  end
end
