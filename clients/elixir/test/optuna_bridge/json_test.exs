defmodule OptunaBridge.JSONTest do
  use ExUnit.Case, async: true
  doctest OptunaBridge.JSON

  alias OptunaBridge.JSON
  alias OptunaBridge.JSON.{DecodeError, EncodeError}
  alias OptunaBridge.TestSupport

  describe "decode/1 accepts RFC 8259 JSON" do
    test "literals, nesting and whitespace" do
      assert JSON.decode(" \t\r\n{\"a\" : [true, false, null, {}, []]}\n") ==
               {:ok, %{"a" => [true, false, nil, %{}, []]}}

      assert JSON.decode("\"top-level string\"") == {:ok, "top-level string"}
      assert JSON.decode("42") == {:ok, 42}
    end

    test "integers stay integers, fractions and exponents are floats" do
      assert {:ok, 0} = JSON.decode("0")
      assert {:ok, -17} = JSON.decode("-17")
      assert {:ok, 12_345_678_901_234_567_890} = JSON.decode("12345678901234567890")
      assert {:ok, 1.5} = JSON.decode("1.5")
      assert {:ok, 1.0e-5} = JSON.decode("1e-5")
      assert {:ok, 1.0e5} = JSON.decode("1E+5")
      assert {:ok, -2.5e3} = JSON.decode("-2.5e3")
      assert {:ok, 0.00004207988669606632} = JSON.decode("0.00004207988669606632")
      assert {:ok, 0.0} = JSON.decode("1e-400")
    end

    test "escapes, \\u escapes and surrogate pairs" do
      assert JSON.decode(~S("\" \\ \/ \b \f \n \r \t")) == {:ok, "\" \\ / \b \f \n \r \t"}
      assert JSON.decode(~S("\u00e9\u00C9\u20ac")) == {:ok, "éÉ€"}
      assert JSON.decode(~S("\ud83d\ude00 x")) == {:ok, "😀 x"}
      assert JSON.decode(~S("\u0000")) == {:ok, <<0>>}
      assert JSON.decode("\"raw é 😀\"") == {:ok, "raw é 😀"}
    end

    test "duplicate keys: the last one wins" do
      assert JSON.decode(~S({"a":1,"a":2})) == {:ok, %{"a" => 2}}
    end
  end

  describe "decode/1 rejects invalid input with {:error, reason}" do
    for {text, why} <- [
          {"", "empty input"},
          {"nul", "truncated literal"},
          {"[1,2", "unterminated array"},
          {"[1,]", "trailing comma in array"},
          {~S({"a":1,}), "trailing comma in object"},
          {~S({a:1}), "unquoted key"},
          {~S({"a" 1}), "missing colon"},
          {"01", "leading zero"},
          {"1.", "fraction without digits"},
          {".5", "no integer part"},
          {"1e", "exponent without digits"},
          {"+1", "plus sign"},
          {"NaN", "NaN"},
          {"Infinity", "Infinity"},
          {"1e400", "number too large for a double"},
          {"\"abc", "unterminated string"},
          {"\"a\tb\"", "raw control character"},
          {~S("\x"), "unknown escape"},
          {~S("\u12G4"), "bad hex"},
          {~S("\ud83d"), "lone high surrogate"},
          {~S("\ude00"), "lone low surrogate"},
          {~S("\ud83d\u0041"), "high surrogate without low"},
          {<<?", 0xFF, ?">>, "invalid UTF-8"},
          {<<?", 0xED, 0xA0, 0x80, ?">>, "UTF-8 encoded surrogate"},
          {"[1] [2]", "two values"},
          {"{\"a\":1}x", "trailing garbage"}
        ] do
      test "#{why}: #{inspect(text)}" do
        assert {:error, %DecodeError{message: message, position: pos}} =
                 JSON.decode(unquote(text))

        assert is_binary(message) and is_integer(pos)
      end
    end

    test "the position points at the offending byte" do
      assert {:error, %DecodeError{position: 6}} = JSON.decode("[1, 2 x]")
      assert_raise DecodeError, fn -> JSON.decode!("[") end
    end
  end

  describe "decoding cost" do
    test "whether Elixir has its own JSON is asked once per VM, not per frame" do
      # On Elixir < 1.18 `Code.ensure_loaded?(JSON)` searches the whole code path for a module
      # that is not there (~0.5 ms): asked per decode, every reply cost that and a lock-step
      # trial through a Port took 2.5 ms instead of 0.4 ms. The answer is kept in a
      # persistent term after the first decode.
      JSON.decode!(~s({"warm":1}))
      assert :persistent_term.get({JSON, :builtin?}, :not_kept) == JSON.builtin?()
    end
  end

  describe "encode/1" do
    test "compact output, escapes, atoms as strings" do
      assert JSON.encode(%{b: [1, 2.5, nil], a: :maximize, c: "q\"\\\n\u0001é"}) ==
               {:ok, ~S({"a":"maximize","b":[1,2.5,null],"c":"q\"\\\n\u0001é"})}
    end

    test "floats in their shortest round-tripping form; integers as integers" do
      assert JSON.encode!([0.1, 1.0e-5, 1.0e20, 3, -0.0, 1.0]) == "[0.1,1.0e-5,1.0e20,3,-0.0,1.0]"
    end

    test "integer keys are written as strings (intermediate values keyed by step)" do
      trial = OptunaBridge.Wire.trial(%{"number" => 0, "intermediate_values" => %{"3" => 0.5}})

      assert JSON.encode(%{"intermediate_values" => trial.intermediate_values}) ==
               {:ok, ~s({"intermediate_values":{"3":0.5}})}

      assert JSON.encode!(%{1 => "a", -2 => "b"}) |> JSON.decode!() == %{"1" => "a", "-2" => "b"}
    end

    test "two keys with the same string form are refused, never one silently dropped" do
      assert {:error, %EncodeError{message: "duplicate object key \"a\"" <> _}} =
               JSON.encode(%{:a => 2, "a" => 1})

      assert {:error, %EncodeError{}} = JSON.encode(%{1 => 2, "1" => 3})
      assert {:error, %EncodeError{}} = JSON.encode(%JSON.Ordered{pairs: [{"a", 1}, {:a, 2}]})
    end

    test "terms without a JSON form are {:error, reason}" do
      assert {:error, %EncodeError{}} = JSON.encode(%{a: {1, 2}})
      assert {:error, %EncodeError{}} = JSON.encode([self()])
      assert {:error, %EncodeError{}} = JSON.encode(<<0xFF>>)
      assert {:error, %EncodeError{}} = JSON.encode(%{1.5 => 2})
      assert_raise EncodeError, fn -> JSON.encode!({:tuple}) end
    end

    test "round trip of awkward values" do
      value = %{
        "floats" => [0.1, 1.0e-300, 1.7976931348623157e308, 5.0e-324, -123.456, 2.0e22],
        "ints" => [0, -1, 9_007_199_254_740_993, 12_345_678_901_234_567_890],
        "strings" => [
          "",
          "\u0000\u001f\u007f",
          "😀\u2028\u2029",
          "\\\"/",
          String.duplicate("é", 10)
        ],
        "nested" => [[[%{"k" => [%{}]}]]]
      }

      assert value |> JSON.encode!() |> JSON.decode!() === value
    end

    test "a 1 MiB string round-trips" do
      big = String.duplicate("ab\"\n", 262_144)
      assert big |> JSON.encode!() |> JSON.decode!() == big
    end
  end

  describe "ordered objects" do
    test "objects: :ordered keeps member order through a round trip" do
      text = ~S({"z":1,"a":{"y":[{"q":1,"b":2}],"x":null}})
      value = JSON.decode!(text, objects: :ordered)
      assert %JSON.Ordered{pairs: [{"z", 1}, {"a", %JSON.Ordered{}}]} = value
      assert JSON.encode!(value) == text
    end
  end

  describe "the shared example conversations" do
    test "every line of every protocol/examples/*.jsonl decodes and round-trips" do
      files = TestSupport.example_files()
      assert files != [], "no example files in #{TestSupport.examples_dir()}"

      for file <- files, {line, n} <- Enum.with_index(File.stream!(file), 1) do
        assert {:ok, value} = JSON.decode(line), "#{Path.basename(file)}:#{n} does not decode"
        assert {:ok, text} = JSON.encode(value)

        assert JSON.decode(text) === {:ok, value},
               "#{Path.basename(file)}:#{n} does not round-trip"
      end
    end
  end
end
