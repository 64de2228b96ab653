package engine

import (
	"encoding/json"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// stdDecodeList is decodeList as it was written on encoding/json's Decoder,
// kept for the tests as what the scanner must agree with.
func stdDecodeList(r io.Reader, k keep, visit func(*unstructured.Unstructured) error) (listMeta, error) {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	if err := stdExpectDelim(dec, '{'); err != nil {
		return listMeta{}, err
	}
	var meta listMeta
	for dec.More() {
		key, err := stdObjectKey(dec)
		if err != nil {
			return listMeta{}, err
		}
		switch key {
		case "metadata":
			if err := dec.Decode(&meta); err != nil {
				return listMeta{}, fmt.Errorf("decoding the list's metadata: %w", err)
			}
		case "items":
			if err := stdDecodeItems(dec, k, visit); err != nil {
				return listMeta{}, err
			}
		default:
			if err := dec.Decode(&stdSkipValue{}); err != nil {
				return listMeta{}, fmt.Errorf("decoding the list: %w", err)
			}
		}
	}
	return meta, stdExpectDelim(dec, '}')
}

func stdDecodeItems(dec *json.Decoder, k keep, visit func(*unstructured.Unstructured) error) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("decoding the list's items: %w", err)
	}
	if tok == nil {
		return nil
	}
	if tok != json.Delim('[') {
		return fmt.Errorf("decoding the list's items: %v, not an array", tok)
	}
	for i := 0; dec.More(); i++ {
		v, err := stdPrune(dec, k)
		if err != nil {
			return fmt.Errorf("decoding item %d of the list: %w", i, err)
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("decoding item %d of the list: %T, not an object", i, v)
		}
		if err := visit(&unstructured.Unstructured{Object: obj}); err != nil {
			return errVisit{err}
		}
	}
	return stdExpectDelim(dec, ']')
}

// stdPrune reads one JSON value, keeping of an object only the fields k names
// (all of it when k is nil). Values are as apimachinery decodes them
// (integers int64, other numbers float64), so the helpers that read the
// pruned object see what they would see in the whole one.
func stdPrune(dec *json.Decoder, k keep) (any, error) {
	if k == nil {
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		return stdNumbers(v), nil
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return stdTokenValue(dec, tok)
	}
	out := map[string]any{}
	for dec.More() {
		key, err := stdObjectKey(dec)
		if err != nil {
			return nil, err
		}
		child, ok := k[key]
		if !ok {
			if err := dec.Decode(&stdSkipValue{}); err != nil {
				return nil, err
			}
			continue
		}
		if out[key], err = stdPrune(dec, child); err != nil {
			return nil, err
		}
	}
	return out, stdExpectDelim(dec, '}')
}

// stdTokenValue finishes a value whose first token was read: a scalar, or an
// array kept whole. (Objects are pruned by the caller.)
func stdTokenValue(dec *json.Decoder, tok json.Token) (any, error) {
	switch t := tok.(type) {
	case json.Delim:
		if t != '[' {
			return nil, fmt.Errorf("unexpected %v", t)
		}
		list := []any{}
		for dec.More() {
			v, err := stdPrune(dec, nil)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		return list, stdExpectDelim(dec, ']')
	case json.Number:
		return stdNumber(t), nil
	}
	return tok, nil
}

// stdNumbers converts json.Number as apimachinery's JSON decoding does.
func stdNumbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		return stdNumber(t)
	case map[string]any:
		for k, e := range t {
			if n, ok := e.(json.Number); ok {
				t[k] = stdNumber(n)
			} else if _, ok := e.(string); !ok {
				t[k] = stdNumbers(e)
			}
		}
	case []any:
		for i, e := range t {
			t[i] = stdNumbers(e)
		}
	}
	return v
}

func stdNumber(n json.Number) any {
	if i, err := n.Int64(); err == nil {
		return i
	}
	if f, err := n.Float64(); err == nil {
		return f
	}
	return string(n)
}

func stdObjectKey(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	key, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("%v, not an object key", tok)
	}
	return key, nil
}

func stdExpectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != d {
		return fmt.Errorf("%v, not %v", tok, d)
	}
	return nil
}

// stdSkipValue reads a JSON value and throws it away, without building it.
type stdSkipValue struct{}

func (*stdSkipValue) UnmarshalJSON([]byte) error { return nil }
