package engine

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	"relabel.dev/relabel/rules"
)

// Lists of built-in kinds are read as protobuf: the API server encodes it
// faster than JSON, and a field the audit does not read costs its length
// to skip, not a scan of its bytes (managed fields and the last-applied
// annotation are most of an object).

// protobufMagic starts every protobuf response of the API server; a
// runtime.Unknown follows whose raw bytes are the list.
const protobufMagic = "k8s\x00"

// acceptProtobuf asks for protobuf, or JSON where the API server has none.
const acceptProtobuf = "application/vnd.kubernetes.protobuf, application/json"

// protoType is how a field is encoded and how the JSON decoding would
// give it in an unstructured object.
type protoType uint8

const (
	protoString    protoType = iota + 1
	protoBool                // an optional bool: present only when set
	protoStrings             // repeated string: []any of string
	protoStringMap           // map<string, string>: map[string]any of string
	protoMessage             // map[string]any
	protoMessages            // repeated message: []any of map[string]any
)

type protoField struct {
	name string
	typ  protoType
	// omitEmpty: the JSON leaves the field out when it is empty.
	omitEmpty bool
	msg       protoSchema
	// partial: msg names only some of the message's fields, so it cannot
	// be read whole.
	partial bool
	// null: the JSON has null where the protobuf has nothing (a pointer
	// without omitempty).
	null bool
}

// protoSchema is a message's fields by number; the fields a schema does
// not name are skipped. It names every field of the messages the audit
// reads whole (selectors, owner references), and of the others, marked
// partial, what the audit may read.
type protoSchema []protoField

func schemaOf(fields map[protowire.Number]protoField) protoSchema {
	var s protoSchema
	for n, f := range fields {
		if int(n) >= len(s) {
			s = append(s, make(protoSchema, int(n)+1-len(s))...)
		}
		s[n] = f
	}
	return s
}

func (s protoSchema) field(n protowire.Number) (protoField, bool) {
	if n < 0 || int(n) >= len(s) || s[n].typ == 0 {
		return protoField{}, false
	}
	return s[n], true
}

func (s protoSchema) named(name string) (protoField, bool) {
	for _, f := range s {
		if f.typ != 0 && f.name == name {
			return f, true
		}
	}
	return protoField{}, false
}

// The numbers of k8s.io/apimachinery's meta/v1 and k8s.io/api's core/v1
// generated.proto.
var (
	ownerReferenceProto = schemaOf(map[protowire.Number]protoField{
		1: {name: "kind", typ: protoString},
		3: {name: "name", typ: protoString},
		4: {name: "uid", typ: protoString},
		5: {name: "apiVersion", typ: protoString},
		6: {name: "controller", typ: protoBool},
		7: {name: "blockOwnerDeletion", typ: protoBool},
	})
	objectMetaProto = schemaOf(map[protowire.Number]protoField{
		1:  {name: "name", typ: protoString, omitEmpty: true},
		3:  {name: "namespace", typ: protoString, omitEmpty: true},
		11: {name: "labels", typ: protoStringMap},
		12: {name: "annotations", typ: protoStringMap},
		13: {name: "ownerReferences", typ: protoMessages, msg: ownerReferenceProto},
	})
	objectMeta         = protoField{name: "metadata", typ: protoMessage, msg: objectMetaProto, partial: true}
	labelSelectorProto = schemaOf(map[protowire.Number]protoField{
		1: {name: "matchLabels", typ: protoStringMap},
		2: {name: "matchExpressions", typ: protoMessages, msg: schemaOf(map[protowire.Number]protoField{
			1: {name: "key", typ: protoString},
			2: {name: "operator", typ: protoString},
			3: {name: "values", typ: protoStrings},
		})},
	})
	podTemplateProto = schemaOf(map[protowire.Number]protoField{1: objectMeta})
)

// objectProto is the schema of an object of a built-in kind, none for
// kinds without protobuf or of a version whose numbers it does not have.
func objectProto(kind rules.Kind) protoSchema {
	p := kind.Proto
	if p.Version != kind.Version || p.Selector <= 0 || p.Template <= 0 || p.Selector == p.Template {
		return nil
	}
	return schemaOf(map[protowire.Number]protoField{
		1: objectMeta,
		2: {name: "spec", typ: protoMessage, partial: true, msg: schemaOf(map[protowire.Number]protoField{
			protowire.Number(p.Selector): {name: "selector", typ: protoMessage, msg: labelSelectorProto, null: true},
			protowire.Number(p.Template): {name: "template", typ: protoMessage, msg: podTemplateProto, partial: true},
		})},
	})
}

// covers says whether s has every field k keeps, so that an object decoded
// through s holds what the JSON pruned to k would.
func (s protoSchema) covers(k keep) bool {
	if s == nil {
		return false
	}
	for name, child := range k {
		f, ok := s.named(name)
		switch {
		case !ok:
			return false
		case child == nil:
			if f.partial {
				return false
			}
		case f.typ == protoStringMap: // entries by key
		case f.typ != protoMessage && f.typ != protoMessages || !f.msg.covers(child):
			return false
		}
	}
	return true
}

// protoDecoder decodes the objects of one list.
type protoDecoder struct {
	// keys holds the map keys read so far: a list's objects repeat their
	// labels' keys.
	keys map[string]string
}

// key is b as a string, the same string for the same key, as
// jsonScanner.internedKey.
func (d *protoDecoder) key(b []byte) string {
	if k, ok := d.keys[string(b)]; ok {
		return k
	}
	k := protoText(b)
	if d.keys == nil {
		d.keys = make(map[string]string)
	}
	if len(d.keys) < maxInternedKeys {
		d.keys[string(b)] = k
	}
	return k
}

// nextField splits the first field off message b: its number, its wire
// type and its value whole, as protowire.ConsumeFieldValue delimits it
// (a length-delimited value with its length), and the rest of b.
func nextField(b []byte) (protowire.Number, protowire.Type, []byte, []byte, error) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, 0, nil, nil, protowire.ParseError(n)
	}
	b = b[n:]
	if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
		return 0, 0, nil, nil, protowire.ParseError(n)
	}
	return num, typ, b[:n], b[n:], nil
}

// contents is what a length-delimited value nextField gave holds.
func contents(v []byte) []byte {
	c, _ := protowire.ConsumeBytes(v) // delimited by nextField already
	return c
}

// decodeProto reads message b into out as the JSON decoding pruned to k
// would give it (all of it when k is nil).
func (d *protoDecoder) decodeProto(out map[string]any, b []byte, s protoSchema, k keep) error {
	for len(b) > 0 {
		num, typ, v, rest, err := nextField(b)
		if err != nil {
			return err
		}
		b = rest
		f, known := s.field(num)
		child, wanted := k[f.name]
		if !known || k != nil && !wanted {
			continue
		}
		if err := d.decodeField(f, out, typ, v, child); err != nil {
			return fmt.Errorf("field %s: %w", f.name, err)
		}
	}
	for _, f := range s {
		if _, wanted := k[f.name]; f.null && (k == nil || wanted) {
			if _, ok := out[f.name]; !ok {
				out[f.name] = nil
			}
		}
	}
	return nil
}

// decodeField puts one occurrence of f, v of wire type typ, into out.
func (d *protoDecoder) decodeField(f protoField, out map[string]any, typ protowire.Type, v []byte, k keep) error {
	if f.typ == protoBool {
		if typ != protowire.VarintType {
			return fmt.Errorf("wire type %d, not a varint", typ)
		}
		x, _ := protowire.ConsumeVarint(v) // delimited by nextField already
		out[f.name] = x != 0
		return nil
	}
	if typ != protowire.BytesType {
		return fmt.Errorf("wire type %d, not length-delimited", typ)
	}
	v = contents(v)
	switch f.typ {
	case protoString:
		if len(v) > 0 || !f.omitEmpty {
			out[f.name] = protoText(v)
		}
	case protoStrings:
		list, _ := out[f.name].([]any)
		out[f.name] = append(list, protoText(v))
	case protoStringMap:
		key, value, err := mapEntry(v)
		if err != nil {
			return err
		}
		if _, ok := k[string(key)]; k != nil && !ok {
			return nil
		}
		m, _ := out[f.name].(map[string]any)
		if m == nil {
			m = map[string]any{}
			out[f.name] = m
		}
		m[d.key(key)] = protoText(value)
	case protoMessage:
		// A message given twice is merged, as protobuf does.
		m, _ := out[f.name].(map[string]any)
		if m == nil {
			m = map[string]any{}
			out[f.name] = m
		}
		return d.decodeProto(m, v, f.msg, k)
	case protoMessages:
		m := map[string]any{}
		if err := d.decodeProto(m, v, f.msg, k); err != nil {
			return err
		}
		list, _ := out[f.name].([]any)
		out[f.name] = append(list, m)
	}
	return nil
}

// mapEntry reads a map<string, string> entry, its bytes valid as long as
// b's.
func mapEntry(b []byte) (key, value []byte, err error) {
	for len(b) > 0 {
		num, typ, v, rest, err := nextField(b)
		if err != nil {
			return nil, nil, err
		}
		b = rest
		switch {
		case num == 1 && typ == protowire.BytesType:
			key = contents(v)
		case num == 2 && typ == protowire.BytesType:
			value = contents(v)
		}
	}
	return key, value, nil
}

// protoText is a protobuf string as the JSON would give it: invalid UTF-8
// is written by the API server as U+FFFD, a byte at a time.
func protoText(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	out := make([]byte, 0, len(b)+8)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		out = utf8.AppendRune(out, r)
		b = b[size:]
	}
	return string(out)
}

// maxProtoItem bounds one object of a protobuf list: the API server keeps
// none larger than a few MiB.
const maxProtoItem = 64 << 20

// protoStream reads a protobuf list from the response body, an object at
// a time.
type protoStream struct {
	r    *bufio.Reader
	left uint64 // bytes of the list not read yet
	buf  []byte
}

func (p *protoStream) varint() (uint64, error) {
	var v uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if p.left == 0 {
			return 0, io.ErrUnexpectedEOF
		}
		c, err := p.r.ReadByte()
		if err != nil {
			return 0, unexpected(err)
		}
		p.left--
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, nil
		}
	}
	return 0, errors.New("varint overflows 64 bits")
}

// bytes reads a length-delimited value, valid until the next read.
func (p *protoStream) bytes() ([]byte, error) {
	n, err := p.varint()
	if err != nil {
		return nil, err
	}
	if n > p.left || n > maxProtoItem {
		return nil, fmt.Errorf("a value of %d bytes where %d are left", n, p.left)
	}
	if uint64(cap(p.buf)) < n {
		p.buf = make([]byte, n)
	}
	p.buf = p.buf[:n]
	if _, err := io.ReadFull(p.r, p.buf); err != nil {
		return nil, unexpected(err)
	}
	p.left -= n
	return p.buf, nil
}

func (p *protoStream) skip(typ protowire.Type) error {
	var n uint64
	switch typ {
	case protowire.VarintType:
		_, err := p.varint()
		return err
	case protowire.Fixed32Type:
		n = 4
	case protowire.Fixed64Type:
		n = 8
	case protowire.BytesType:
		var err error
		if n, err = p.varint(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("wire type %d", typ)
	}
	if n > p.left {
		return io.ErrUnexpectedEOF
	}
	if _, err := p.r.Discard(int(n)); err != nil {
		return unexpected(err)
	}
	p.left -= n
	return nil
}

func (p *protoStream) tag() (protowire.Number, protowire.Type, error) {
	v, err := p.varint()
	if err != nil {
		return 0, 0, err
	}
	num, typ := protowire.DecodeTag(v)
	if num < protowire.MinValidNumber {
		return 0, 0, fmt.Errorf("field number %d", num)
	}
	return num, typ, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// decodeProtoList streams one protobuf list response: each item decoded
// through s as far as k says is handed to visit; it returns the list's
// metadata.
func decodeProtoList(r *bufio.Reader, s protoSchema, k keep, visit func(*unstructured.Unstructured) error) (listMeta, error) {
	magic := make([]byte, len(protobufMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != protobufMagic {
		return listMeta{}, fmt.Errorf("decoding the list: not a protobuf response")
	}
	// The runtime.Unknown around the list: typeMeta 1, raw 2 (the list),
	// contentEncoding 3, contentType 4.
	outer := &protoStream{r: r, left: ^uint64(0)}
	var meta listMeta
	var sawList bool
	for {
		if _, err := r.Peek(1); errors.Is(err, io.EOF) {
			break
		}
		num, typ, err := outer.tag()
		if err != nil {
			return listMeta{}, fmt.Errorf("decoding the list: %w", err)
		}
		if num != 2 || typ != protowire.BytesType {
			if err := outer.skip(typ); err != nil {
				return listMeta{}, fmt.Errorf("decoding the list: %w", err)
			}
			continue
		}
		size, err := outer.varint()
		if err != nil {
			return listMeta{}, fmt.Errorf("decoding the list: %w", err)
		}
		list := &protoStream{r: r, left: size}
		if meta, err = decodeProtoItems(list, s, k, visit); err != nil {
			return listMeta{}, err
		}
		outer.left -= size
		sawList = true
	}
	if !sawList {
		return listMeta{}, errors.New("decoding the list: the response holds no list")
	}
	return meta, nil
}

// decodeProtoItems reads a list message: metadata 1, items 2.
func decodeProtoItems(p *protoStream, s protoSchema, k keep, visit func(*unstructured.Unstructured) error) (listMeta, error) {
	var meta listMeta
	var d protoDecoder
	for i := 0; p.left > 0; {
		num, typ, err := p.tag()
		if err != nil {
			return listMeta{}, fmt.Errorf("decoding the list: %w", err)
		}
		if num > 2 || typ != protowire.BytesType {
			if err := p.skip(typ); err != nil {
				return listMeta{}, fmt.Errorf("decoding the list: %w", err)
			}
			continue
		}
		b, err := p.bytes()
		if err != nil {
			return listMeta{}, fmt.Errorf("decoding the list: %w", err)
		}
		if num == 1 {
			if meta, err = decodeListMeta(b); err != nil {
				return listMeta{}, fmt.Errorf("decoding the list's metadata: %w", err)
			}
			continue
		}
		obj := map[string]any{}
		if err := d.decodeProto(obj, b, s, k); err != nil {
			return listMeta{}, fmt.Errorf("decoding item %d of the list: %w", i, err)
		}
		if err := visit(&unstructured.Unstructured{Object: obj}); err != nil {
			return listMeta{}, errVisit{err}
		}
		i++
	}
	return meta, nil
}

// decodeListMeta reads a ListMeta: continue 3, remainingItemCount 4.
func decodeListMeta(b []byte) (listMeta, error) {
	var meta listMeta
	for len(b) > 0 {
		num, typ, v, rest, err := nextField(b)
		if err != nil {
			return listMeta{}, err
		}
		b = rest
		switch {
		case num == 3 && typ == protowire.BytesType:
			meta.Continue = string(contents(v))
		case num == 4 && typ == protowire.VarintType:
			count, _ := protowire.ConsumeVarint(v)
			meta.RemainingItemCount = ptr.To(int64(count))
		}
	}
	return meta, nil
}
