package webhook

import (
	"bytes"
	"errors"
	"fmt"
	"mime/multipart"
	"runtime"
	"strings"
	"testing"
)

// formFields is a form body of secret, type and n data fields.
func formFields(n int) string {
	var b strings.Builder
	b.WriteString("secret=s&type=sms")
	for i := range n {
		fmt.Fprintf(&b, "&data[f%d]=v", i)
	}
	return b.String()
}

// jsonFields is a JSON body whose data holds n fields.
func jsonFields(n int) string {
	var b strings.Builder
	b.WriteString(`{"secret":"s","type":"sms","data":{`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"f%d":"v"`, i)
	}
	b.WriteString("}}")
	return b.String()
}

func multipartFields(t *testing.T, fields [][2]string) (string, string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for _, f := range fields {
		if err := w.WriteField(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return w.FormDataContentType(), b.String()
}

func multipartN(t *testing.T, n int) (string, string) {
	fields := [][2]string{{"secret", "s"}, {"type", "sms"}}
	for i := range n {
		fields = append(fields, [2]string{fmt.Sprintf("data[f%d]", i), "v"})
	}
	return multipartFields(t, fields)
}

// TestDecodeLimits: each limit lets a body at the limit through and refuses
// one just past it with its own error, in every wire format.
func TestDecodeLimits(t *testing.T) {
	big := strings.Repeat("x", MaxFieldBytes)
	name := strings.Repeat("n", MaxNameBytes)
	nested := func(levels int) string { return "data" + strings.Repeat("[a]", levels) }
	jsonNested := func(levels int) string {
		return `{"secret":"s","type":"x","data":` + strings.Repeat(`{"a":`, levels) + `1` + strings.Repeat("}", levels) + "}"
	}
	jsonArrays := func(levels int) string {
		return `{"secret":"s","type":"x","data":{"a":` + strings.Repeat("[", levels-1) + `1` + strings.Repeat("]", levels-1) + "}}"
	}
	mpMax, mpMaxBody := multipartN(t, MaxFields-2)
	mpOver, mpOverBody := multipartN(t, MaxFields-1)
	mpBig, mpBigBody := multipartFields(t, [][2]string{{"secret", "s"}, {"type", "sms"}, {"data[m]", big}})
	mpHuge, mpHugeBody := multipartFields(t, [][2]string{{"secret", "s"}, {"type", "sms"}, {"data[m]", big + "x"}})
	mpDeep, mpDeepBody := multipartFields(t, [][2]string{{"secret", "s"}, {"type", "sms"}, {nested(MaxDepth + 1), "1"}})
	tests := []struct {
		name        string
		contentType string
		body        string
		wantErr     error // nil: decodes
	}{
		{"form at MaxFields", formType, formFields(MaxFields - 2), nil},
		{"form over MaxFields", formType, formFields(MaxFields - 1), ErrTooManyFields},
		{"form repeated key over MaxFields", formType, "secret=s&type=sms" + strings.Repeat("&data[a]=1", MaxFields), ErrTooManyFields},
		{"form empty pairs over MaxFields", formType, "secret=s&type=sms" + strings.Repeat("&", MaxFields), ErrTooManyFields},
		{"form value at MaxFieldBytes", formType, "secret=s&type=sms&data[m]=" + big, nil},
		{"form value over MaxFieldBytes", formType, "secret=s&type=sms&data[m]=" + big + "x", ErrFieldTooLarge},
		{"form name at MaxNameBytes", formType, "secret=s&type=sms&data[" + name + "]=1", nil},
		{"form name over MaxNameBytes", formType, "secret=s&type=sms&data[" + name + "n]=1", ErrFieldTooLarge},
		{"form nested name over MaxNameBytes", formType, "secret=s&type=sms&data[" + name[:200] + "][" + name[:100] + "]=1", ErrFieldTooLarge},
		{"form secret over MaxFieldBytes", formType, "secret=" + big + "x&type=sms", ErrFieldTooLarge},
		{"form ignored value over MaxFieldBytes", formType, "secret=s&type=sms&other=" + big + "x", ErrFieldTooLarge},
		{"form type at MaxTypeBytes", formType, "secret=s&type=" + strings.Repeat("t", MaxTypeBytes), nil},
		{"form type over MaxTypeBytes", formType, "secret=s&type=" + strings.Repeat("t", MaxTypeBytes+1), ErrFieldTooLarge},
		{"form type over MaxTypeBytes once repaired", formType, "secret=s&type=" + strings.Repeat("t%FF", MaxTypeBytes/2), ErrFieldTooLarge},
		{"form nested at MaxDepth", formType, "secret=s&type=x&" + nested(MaxDepth) + "=1", nil},
		{"form nested over MaxDepth", formType, "secret=s&type=x&" + nested(MaxDepth+1) + "=1", ErrNestedTooDeep},
		{"form nested 100 deep, brackets escaped", formType, "secret=s&type=x&data" + strings.Repeat("%5Ba%5D", 100) + "=1", ErrNestedTooDeep},
		{"multipart at MaxFields", mpMax, mpMaxBody, nil},
		{"multipart over MaxFields", mpOver, mpOverBody, ErrTooManyFields},
		{"multipart value at MaxFieldBytes", mpBig, mpBigBody, nil},
		{"multipart value over MaxFieldBytes", mpHuge, mpHugeBody, ErrFieldTooLarge},
		{"multipart nested over MaxDepth", mpDeep, mpDeepBody, ErrNestedTooDeep},
		{"JSON at MaxFields", "application/json", jsonFields(MaxFields - 3), nil},
		{"JSON over MaxFields", "application/json", jsonFields(MaxFields - 2), ErrTooManyFields},
		{"JSON ignored values count", "application/json", `{"secret":"s","type":"x","junk":[` + strings.TrimSuffix(strings.Repeat("0,", MaxFields), ",") + `]}`, ErrTooManyFields},
		{"JSON value at MaxFieldBytes", "application/json", `{"secret":"s","type":"x","data":{"m":"` + big + `"}}`, nil},
		{"JSON value over MaxFieldBytes", "application/json", `{"secret":"s","type":"x","data":{"m":"` + big + `x"}}`, ErrFieldTooLarge},
		{"JSON name at MaxNameBytes", "application/json", `{"secret":"s","type":"x","data":{"` + name + `":"1"}}`, nil},
		{"JSON name over MaxNameBytes", "application/json", `{"secret":"s","type":"x","data":{"` + name + `n":"1"}}`, ErrFieldTooLarge},
		{"JSON nested name over MaxNameBytes", "application/json", `{"secret":"s","type":"x","data":{"` + name[:200] + `":{"` + name[:100] + `":1}}}`, ErrFieldTooLarge},
		{"JSON secret over MaxFieldBytes", "application/json", `{"secret":"` + big + `x","type":"x"}`, ErrFieldTooLarge},
		{"JSON type over MaxTypeBytes", "application/json", `{"secret":"s","type":"` + strings.Repeat("t", MaxTypeBytes+1) + `"}`, ErrFieldTooLarge},
		{"JSON objects at MaxDepth", "application/json", jsonNested(MaxDepth), nil},
		{"JSON objects over MaxDepth", "application/json", jsonNested(MaxDepth + 1), ErrNestedTooDeep},
		{"JSON arrays at MaxDepth", "application/json", jsonArrays(MaxDepth), nil},
		{"JSON arrays over MaxDepth", "application/json", jsonArrays(MaxDepth + 1), ErrNestedTooDeep},
		{"JSON 10,000 deep", "application/json", `{"data":{"a":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + "}}", ErrNestedTooDeep},
		{"JSON ignored key nested too deep", "application/json", `{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + "}", ErrNestedTooDeep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := DecodePayload(tt.contentType, strings.NewReader(tt.body), DecodeOptions{})
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("err = %v, want the body decoded", err)
				}
				if p.Type == "" {
					t.Fatalf("no type decoded")
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || !isLimit(err) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if errors.Is(err, ErrMalformed) {
				t.Errorf("err = %v: a limit is not a malformed body", err)
			}
			if strings.Contains(err.Error(), "xxxx") || strings.Contains(err.Error(), "nnnn") || strings.Contains(err.Error(), "[a]") {
				t.Errorf("err quotes the body: %.200s", err)
			}
		})
	}
}

// TestDecodeLimitsKeepNestedNames: a body at MaxDepth keeps its full names.
func TestDecodeLimitsKeepNestedNames(t *testing.T) {
	want := strings.TrimSuffix(strings.Repeat("a.", MaxDepth), ".")
	for ct, body := range map[string]string{
		formType:           "secret=s&type=x&data" + strings.Repeat("[a]", MaxDepth) + "=1",
		"application/json": `{"secret":"s","type":"x","data":` + strings.Repeat(`{"a":`, MaxDepth) + `1` + strings.Repeat("}", MaxDepth) + "}",
	} {
		p, err := DecodePayload(ct, strings.NewReader(body), DecodeOptions{})
		if err != nil {
			t.Fatalf("%s: %v", ct, err)
		}
		if p.Data[want] != "1" || len(p.Data) != 1 {
			t.Errorf("%s: data = %v, want %s=1", ct, p.Data, want)
		}
	}
}

// TestDecodeMemoryIsBounded: what decoding allocates stays within a small
// multiple of the body plus MaxFields names of MaxNameBytes, however the
// body is shaped. Without the name cap, a 500 KB name above 990 values
// made 990 names of 500 KB: some 500 MB from a 0.5 MB body.
func TestDecodeMemoryIsBounded(t *testing.T) {
	children := func(name string, n int) string {
		var b strings.Builder
		b.WriteString(`{"secret":"s","type":"x","data":{"` + name + `":{`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"%d":1`, i)
		}
		b.WriteString("}}}")
		return b.String()
	}
	mpType, mpBody := multipartN(t, MaxFields-2)
	bodies := []struct{ name, contentType, body string }{
		{"JSON long name above many values", "application/json", children(strings.Repeat("n", 500_000), MaxFields-10)},
		{"JSON longest name above many values", "application/json", children(strings.Repeat("n", MaxNameBytes-4), MaxFields-10)},
		{"JSON nested 10,000 deep", "application/json", `{"data":{"a":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + "}}"},
		{"form 10,000 repeated keys", formType, "secret=s&type=x" + strings.Repeat("&data[a]=1", 10000)},
		{"form keys nested 10,000 deep", formType, "secret=s&type=x&data" + strings.Repeat("[a]", 10000) + "=1"},
		{"multipart at MaxFields", mpType, mpBody},
	}
	for _, b := range bodies {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := DecodePayload(b.contentType, strings.NewReader(b.body), DecodeOptions{UnescapeHTML: true})
		runtime.ReadMemStats(&after)
		alloc := after.TotalAlloc - before.TotalAlloc
		if limit := 8*uint64(len(b.body)) + 4<<20; alloc > limit {
			t.Errorf("%s: decoding a %d-byte body allocated %d bytes (err %v), over %d", b.name, len(b.body), alloc, err, limit)
		}
	}
}
