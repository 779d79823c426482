package relay

import (
	"errors"
	"fmt"
	"mime"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hookmail/hookmail/config"
)

// MaxAttachmentBytes is the most the files one email attaches may hold
// together, decoded. base64 makes them 4/3 as large, with a line break
// every 76 characters: about 9.6 MB, which leaves the text and HTML parts
// the rest of MaxEmailBytes. A source's media.max_bytes is at most this.
const MaxAttachmentBytes = config.MaxMediaBytes

// attachmentPartOverhead is what one attachment part adds to an email
// besides its base64 body, at most: the boundary line and the
// Content-Type, Content-Disposition and Content-Transfer-Encoding fields,
// whose name (at most maxFileNameRunes) is written twice, RFC 2047 encoded.
const attachmentPartOverhead = 4 << 10

// noteGrowth is what leaving one more file out can add to the text and
// HTML parts together: its "Not attached: name (why)" line in both,
// escaped and quoted-printable encoded.
const noteGrowth = 8 << 10

// maxFileNameRunes bounds an attachment's name.
const maxFileNameRunes = 100

// encodedPartSize is the most an attachment of n bytes adds to an email.
func encodedPartSize(n int) int {
	b64 := (n + 2) / 3 * 4
	return b64 + (b64+75)/76*2 + attachmentPartOverhead
}

// planAttachments decides which of files the email attaches: those with
// bytes (and no Note already), in order, while together they hold at most
// MaxAttachmentBytes and, encoded, at most room bytes. It returns every
// file, each with a safe name and media type (see safeFileName and
// safeMediaType) and its Size; a file with bytes that is left out gets a
// Note saying why, so the email names it ("Not attached: ..."). files
// itself is not changed.
func planAttachments(files []Attachment, room int) []Attachment {
	out := make([]Attachment, len(files))
	var total, used int
	for i, a := range files {
		if a.ContentType != "" {
			a.ContentType = safeMediaType(a.ContentType)
		}
		carried := len(a.Data) > 0 && a.Note == ""
		if a.Name != "" || carried {
			a.Name = safeFileName(a.Name, i+1, a.ContentType)
		}
		if !carried {
			out[i] = a
			continue
		}
		n := len(a.Data)
		a.Size = int64(n)
		switch {
		case total+n <= MaxAttachmentBytes && used+encodedPartSize(n) <= room:
			total += n
			used += encodedPartSize(n)
		case n > MaxAttachmentBytes:
			a.Note = fmt.Sprintf("%s, more than the %s an email may attach", formatSize(int64(n)), formatSize(MaxAttachmentBytes))
		default:
			a.Note = fmt.Sprintf("%s, more than the room left in this email", formatSize(int64(n)))
		}
		out[i] = a
	}
	return out
}

// attached returns the files of plan the email carries.
func attached(plan []Attachment) []Attachment {
	var out []Attachment
	for _, a := range plan {
		if len(a.Data) > 0 && a.Note == "" {
			out = append(out, a)
		}
	}
	return out
}

// linkedOnly returns files as an email that attaches none shows them (a
// digest): a file with bytes gets a Note saying it is not attached.
func linkedOnly(files []Attachment, why string) []Attachment {
	out := make([]Attachment, len(files))
	for i, a := range files {
		if len(a.Data) > 0 && a.Note == "" {
			a.Size = int64(len(a.Data))
			a.Note = why
		}
		a.Data = nil
		out[i] = a
	}
	return out
}

// safeMediaType is ct as a media type a mail client may be given: its
// type/subtype alone, lower-case, without parameters, or
// application/octet-stream when ct is not one. A sender's "multipart/…" or
// "message/…" would make clients parse the file as MIME structure, so those
// are application/octet-stream too.
func safeMediaType(ct string) string {
	const fallback = "application/octet-stream"
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil && !errors.Is(err, mime.ErrInvalidMediaParameter) {
		return fallback
	}
	typ, sub, ok := strings.Cut(mt, "/")
	if !ok || typ == "" || sub == "" || len(mt) > 100 || typ == "multipart" || typ == "message" {
		return fallback
	}
	return mt
}

// extensions are the file name extensions of the types MMS carry, for a
// file whose name has none. (mime.ExtensionsByType reads the system's
// tables, which differ from host to host.)
var extensions = map[string]string{
	"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/webp": ".webp",
	"image/heic": ".heic", "image/heif": ".heif", "image/bmp": ".bmp",
	"video/mp4": ".mp4", "video/3gpp": ".3gp", "video/3gpp2": ".3g2", "video/quicktime": ".mov", "video/webm": ".webm",
	"audio/amr": ".amr", "audio/mpeg": ".mp3", "audio/mp4": ".m4a", "audio/aac": ".aac", "audio/ogg": ".ogg", "audio/wav": ".wav",
	"text/plain": ".txt", "text/vcard": ".vcf", "text/x-vcard": ".vcf", "text/calendar": ".ics",
	"application/pdf": ".pdf", "application/smil": ".smil", "application/smil+xml": ".smil",
}

// safeFileName makes a sender's name for the i-th file (1-based) safe as
// an attachment's name: no directories, no control, spoofing or quoting
// characters, at most maxFileNameRunes, not empty ("attachment-i"), and
// with an extension for its media type when it has none.
func safeFileName(name string, i int, contentType string) string {
	name = strings.ToValidUTF8(name, "")
	if j := strings.LastIndexAny(name, `/\`); j >= 0 {
		name = name[j+1:]
	}
	name = strings.Map(func(r rune) rune {
		switch {
		case isSpoofer(r) || r == utf8.RuneError:
			return -1
		case unicode.IsControl(r) || unicode.IsSpace(r):
			return ' '
		case strings.ContainsRune(`"*:<>?|%;=`, r):
			return '_'
		}
		return r
	}, name)
	name = strings.Trim(strings.Join(strings.Fields(name), " "), ". ")
	ext := ""
	if j := strings.LastIndexByte(name, '.'); j > 0 && len(name)-j <= 10 {
		ext = name[j:]
		name = name[:j]
	}
	if name == "" {
		name = fmt.Sprintf("attachment-%d", i)
	}
	if ext == "" {
		ext = extensions[safeMediaType(contentType)]
	}
	if n := maxFileNameRunes - utf8.RuneCountInString(ext); utf8.RuneCountInString(name) > n {
		// Cut, then trimmed again, so a name made safe is made safe
		// again unchanged (the MIME writer does it a second time).
		name = strings.TrimRight(string([]rune(name)[:n]), ". ")
	}
	return name + ext
}
