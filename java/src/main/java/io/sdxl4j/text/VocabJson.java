package io.sdxl4j.text;

import java.util.HashMap;
import java.util.Map;

/**
 * A strict reader for vocab.json: one JSON object mapping token strings to non-negative integer ids (RFC 8259
 * syntax; escapes including surrogate pairs; a repeated key keeps its last id, as Python's json does). Written
 * out by hand because a general JSON library, still cold at start-up, takes several times longer on the
 * 49,408-entry CLIP vocabulary.
 */
final class VocabJson {
    private final String s;
    private int pos;

    private VocabJson(String s) {
        this.s = s;
    }

    /** Thrown with a message that says what was wrong and where; the caller adds the file name. */
    static final class Malformed extends Exception {
        private static final long serialVersionUID = 1L;

        Malformed(String message) {
            super(message);
        }
    }

    static Map<String, Integer> parse(String text) throws Malformed {
        VocabJson p = new VocabJson(text);
        Map<String, Integer> out = new HashMap<>(1 << 17);
        p.skipSpace();
        p.expect('{');
        p.skipSpace();
        if (p.peek() == '}') {
            p.pos++;
        } else {
            while (true) {
                p.skipSpace();
                String key = p.string();
                p.skipSpace();
                p.expect(':');
                p.skipSpace();
                out.put(key, p.id(key));
                p.skipSpace();
                int c = p.next();
                if (c == '}') {
                    break;
                }
                if (c != ',') {
                    throw p.error("expected ',' or '}'");
                }
            }
        }
        p.skipSpace();
        if (p.pos != text.length()) {
            throw p.error("unexpected text after the object");
        }
        return out;
    }

    private int peek() {
        return pos < s.length() ? s.charAt(pos) : -1;
    }

    private int next() {
        return pos < s.length() ? s.charAt(pos++) : -1;
    }

    private void expect(char c) throws Malformed {
        if (next() != c) {
            pos--;
            throw error("expected '" + c + "'");
        }
    }

    private void skipSpace() {
        while (pos < s.length()) {
            char c = s.charAt(pos);
            if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
                return;
            }
            pos++;
        }
    }

    private String string() throws Malformed {
        expect('"');
        int start = pos;
        // fast path: no escapes
        while (pos < s.length()) {
            char c = s.charAt(pos);
            if (c == '"') {
                return s.substring(start, pos++);
            }
            if (c == '\\') {
                break;
            }
            if (c < 0x20) {
                throw error("control character in a string");
            }
            pos++;
        }
        StringBuilder sb = new StringBuilder(s.substring(start, pos));
        while (true) {
            int c = next();
            if (c < 0) {
                throw error("unterminated string");
            }
            if (c == '"') {
                return sb.toString();
            }
            if (c < 0x20) {
                pos--;
                throw error("control character in a string");
            }
            if (c != '\\') {
                sb.append((char) c);
                continue;
            }
            int e = next();
            switch (e) {
                case '"': sb.append('"'); break;
                case '\\': sb.append('\\'); break;
                case '/': sb.append('/'); break;
                case 'b': sb.append('\b'); break;
                case 'f': sb.append('\f'); break;
                case 'n': sb.append('\n'); break;
                case 'r': sb.append('\r'); break;
                case 't': sb.append('\t'); break;
                case 'u': sb.append(hex4()); break;
                default:
                    pos--;
                    throw error("invalid escape");
            }
        }
    }

    private char hex4() throws Malformed {
        if (pos + 4 > s.length()) {
            throw error("truncated \\u escape");
        }
        int v = 0;
        for (int i = 0; i < 4; i++) {
            int d = Character.digit(s.charAt(pos + i), 16);
            if (d < 0 || s.charAt(pos + i) > 'f') {
                throw error("invalid \\u escape");
            }
            v = v * 16 + d;
        }
        pos += 4;
        return (char) v;
    }

    private int id(String key) throws Malformed {
        int start = pos;
        long v = 0;
        while (pos < s.length() && s.charAt(pos) >= '0' && s.charAt(pos) <= '9') {
            v = v * 10 + (s.charAt(pos) - '0');
            if (v > Integer.MAX_VALUE) {
                throw error("id of \"" + key + "\" is too large");
            }
            pos++;
        }
        int len = pos - start;
        if (len == 0 || (len > 1 && s.charAt(start) == '0')) {
            throw error("token \"" + key + "\" must map to a non-negative integer id");
        }
        int c = peek();
        if (c == '.' || c == 'e' || c == 'E') {
            throw error("token \"" + key + "\" must map to an integer id, not a fraction");
        }
        return (int) v;
    }

    private Malformed error(String what) {
        int line = 1;
        int col = 1;
        for (int i = 0; i < Math.min(pos, s.length()); i++) {
            if (s.charAt(i) == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        return new Malformed(what + " at line " + line + ", column " + col);
    }
}
