package webhook

import (
	"errors"
	"maps"
	"strings"
	"testing"
)

func TestFlattenJSON(t *testing.T) {
	blob := func(name string) bool { return name == "file.data" }
	tests := []struct {
		name      string
		body      string
		want      map[string]string
		wantBlobs map[string]string
		wantErr   error
	}{
		{name: "nested, arrays, literals and escapes",
			body: ` {"a":1,"b":{"c":"x \u003d y","d":[true,null,false,-1.5e3]},"e":{},"f":[],"g":null} `,
			want: map[string]string{"a": "1", "b.c": "x = y", "b.d.0": "true", "b.d.2": "false", "b.d.3": "-1.5e3"}},
		{name: "a blob is kept raw, not as a field",
			body:      `{"file":{"name":"a.gif","data":"R0lG\u003d"}}`,
			want:      map[string]string{"file.name": "a.gif"},
			wantBlobs: map[string]string{"file.data": `"R0lG\u003d"`}},
		{name: "a null blob is nothing", body: `{"file":{"data":null}}`, want: map[string]string{}},
		{name: "a blob of another kind", body: `{"file":{"data":1}}`, wantErr: errBlobNotString},
		{name: "a blob that is an array", body: `{"file":{"data":["QQ=="]}}`, wantErr: errBlobNotString},
		{name: "escaped key", body: `{"\u0061\"b":"1"}`, want: map[string]string{`a"b`: "1"}},
		{name: "not JSON", body: `{"a":}`, wantErr: ErrMalformed},
		{name: "not an object", body: `["a"]`, wantErr: ErrMalformed},
		{name: "two values", body: `{} {}`, wantErr: ErrMalformed},
		{name: "empty", body: ``, wantErr: ErrMalformed},
		{name: "too many values", body: `{"a":[` + strings.Repeat(`0,`, MaxFields) + `0]}`, wantErr: ErrTooManyFields},
		{name: "nested too deep", body: strings.Repeat(`{"a":`, MaxDepth+1) + `1` + strings.Repeat(`}`, MaxDepth+1), wantErr: ErrNestedTooDeep},
		{name: "name too long", body: `{"` + strings.Repeat("k", MaxNameBytes+1) + `":1}`, wantErr: ErrFieldTooLarge},
		{name: "value too long", body: `{"a":"` + strings.Repeat("v", MaxFieldBytes+1) + `"}`, wantErr: ErrFieldTooLarge},
		{name: "escaped value too long", body: `{"a":"` + strings.Repeat(`\u0076`, MaxFieldBytes+1) + `"}`, wantErr: ErrFieldTooLarge},
		{name: "number too long", body: `{"a":` + strings.Repeat("9", MaxFieldBytes+1) + `}`, wantErr: ErrFieldTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := flattenJSON([]byte(tt.body), blob)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got.fields, tt.want) {
				t.Errorf("fields %q, want %q", got.fields, tt.want)
			}
			blobs := map[string]string{}
			for k, v := range got.blobs {
				blobs[k] = string(v)
			}
			if tt.wantBlobs == nil {
				tt.wantBlobs = map[string]string{}
			}
			if !maps.Equal(blobs, tt.wantBlobs) {
				t.Errorf("blobs %q, want %q", blobs, tt.wantBlobs)
			}
		})
	}
}

func TestDecodeBase64Literal(t *testing.T) {
	tests := []struct {
		literal string
		want    string
		wantErr bool
	}{
		{`"QQ\u003d\u003d"`, "A", false},
		{`"QUI\u003d"`, "AB", false},
		{`"QUJD"`, "ABC", false},
		{`"QQ=="`, "A", false},
		{`"QQ\u003D="`, "A", false},
		{`"QQ"`, "A", false},
		{`""`, "", false},
		{`"+/8\u003d"`, "\xfb\xff", false},
		{`"Q\u0051\u003d\u003d"`, "A", false},
		{`"QUJD\nREVG"`, "ABCDEF", false},
		{`"QQ\u003d"`, "", true},
		{`"Q"`, "", true},
		{`"QQ==QQ=="`, "", true},
		{`"Q\u003dQ\u003d"`, "", true},
		{`"-_8="`, "", true},
		{`"QQ\u003d\u003d\u003d"`, "", true},
	}
	for _, tt := range tests {
		got, err := decodeBase64Literal([]byte(tt.literal))
		if (err != nil) != tt.wantErr || err == nil && string(got) != tt.want {
			t.Errorf("decodeBase64Literal(%s) = %q, %v; want %q (error %v)", tt.literal, got, err, tt.want, tt.wantErr)
		}
	}
}
