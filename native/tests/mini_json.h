// A small JSON reader for the native runners' reference index files (index.json): objects, arrays, strings
// with escapes (\uXXXX and surrogate pairs to UTF-8), numbers, true/false/null and Python's NaN/Infinity.
// Test code only: the reference files are trusted; a syntax error throws std::runtime_error with the offset.
#pragma once

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace sdxl_test::json {

struct Value {
    enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
    bool b = false;
    double num = 0;
    std::string str;
    std::vector<Value> items;
    std::map<std::string, Value> fields;

    bool has(const std::string& k) const { return kind == Object && fields.count(k) > 0; }
    const Value& operator[](const std::string& k) const {
        auto it = fields.find(k);
        if (kind != Object || it == fields.end()) throw std::runtime_error("json: no field '" + k + "'");
        return it->second;
    }
    const Value& operator[](size_t i) const {
        if (kind != Array || i >= items.size()) throw std::runtime_error("json: index out of range");
        return items[i];
    }
    size_t size() const { return kind == Array ? items.size() : fields.size(); }
    const std::string& text() const {
        if (kind != String) throw std::runtime_error("json: not a string");
        return str;
    }
    double number() const {
        if (kind != Number) throw std::runtime_error("json: not a number");
        return num;
    }
};

class Parser {
public:
    explicit Parser(std::string text) : s_(std::move(text)) {}

    Value parse() {
        Value v = value();
        ws();
        if (i_ != s_.size()) error("trailing characters");
        return v;
    }

private:
    [[noreturn]] void error(const std::string& what) const {
        throw std::runtime_error("json: " + what + " at offset " + std::to_string(i_));
    }
    void ws() {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) ++i_;
    }
    bool starts(const char* lit) const { return s_.compare(i_, std::char_traits<char>::length(lit), lit) == 0; }

    Value value() {
        ws();
        if (i_ >= s_.size()) error("unexpected end");
        Value v;
        const char c = s_[i_];
        if (c == '{') {
            v.kind = Value::Object;
            ++i_;
            ws();
            if (i_ < s_.size() && s_[i_] == '}') { ++i_; return v; }
            for (;;) {
                ws();
                if (i_ >= s_.size() || s_[i_] != '"') error("expected a key");
                std::string k = string();
                ws();
                if (i_ >= s_.size() || s_[i_] != ':') error("expected ':'");
                ++i_;
                v.fields[k] = value();
                ws();
                if (i_ < s_.size() && s_[i_] == ',') { ++i_; continue; }
                if (i_ < s_.size() && s_[i_] == '}') { ++i_; return v; }
                error("expected ',' or '}'");
            }
        }
        if (c == '[') {
            v.kind = Value::Array;
            ++i_;
            ws();
            if (i_ < s_.size() && s_[i_] == ']') { ++i_; return v; }
            for (;;) {
                v.items.push_back(value());
                ws();
                if (i_ < s_.size() && s_[i_] == ',') { ++i_; continue; }
                if (i_ < s_.size() && s_[i_] == ']') { ++i_; return v; }
                error("expected ',' or ']'");
            }
        }
        if (c == '"') { v.kind = Value::String; v.str = string(); return v; }
        if (starts("true")) { i_ += 4; v.kind = Value::Bool; v.b = true; return v; }
        if (starts("false")) { i_ += 5; v.kind = Value::Bool; return v; }
        if (starts("null")) { i_ += 4; return v; }
        if (starts("NaN")) { i_ += 3; v.kind = Value::Number; v.num = NAN; return v; }
        if (starts("Infinity")) { i_ += 8; v.kind = Value::Number; v.num = INFINITY; return v; }
        if (starts("-Infinity")) { i_ += 9; v.kind = Value::Number; v.num = -INFINITY; return v; }
        const char* begin = s_.c_str() + i_;
        char* end = nullptr;
        v.num = std::strtod(begin, &end);
        if (end == begin) error("unexpected character");
        i_ += size_t(end - begin);
        v.kind = Value::Number;
        return v;
    }

    static void utf8(std::string& out, uint32_t cp) {
        if (cp < 0x80) {
            out += char(cp);
        } else if (cp < 0x800) {
            out += char(0xC0 | (cp >> 6));
            out += char(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += char(0xE0 | (cp >> 12));
            out += char(0x80 | ((cp >> 6) & 0x3F));
            out += char(0x80 | (cp & 0x3F));
        } else {
            out += char(0xF0 | (cp >> 18));
            out += char(0x80 | ((cp >> 12) & 0x3F));
            out += char(0x80 | ((cp >> 6) & 0x3F));
            out += char(0x80 | (cp & 0x3F));
        }
    }

    uint32_t hex4() {
        if (i_ + 4 > s_.size()) error("short \\u escape");
        uint32_t v = uint32_t(std::stoul(s_.substr(i_, 4), nullptr, 16));
        i_ += 4;
        return v;
    }

    std::string string() {
        ++i_;  // opening quote
        std::string out;
        while (i_ < s_.size() && s_[i_] != '"') {
            char c = s_[i_++];
            if (c != '\\') { out += c; continue; }
            if (i_ >= s_.size()) error("bad escape");
            char e = s_[i_++];
            switch (e) {
                case 'n': out += '\n'; break;
                case 't': out += '\t'; break;
                case 'r': out += '\r'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'u': {
                    uint32_t cp = hex4();
                    if (cp >= 0xD800 && cp < 0xDC00 && starts("\\u")) {
                        i_ += 2;
                        uint32_t lo = hex4();
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    }
                    utf8(out, cp);
                    break;
                }
                default: out += e;  // \" \\ \/
            }
        }
        if (i_ >= s_.size()) error("unterminated string");
        ++i_;
        return out;
    }

    std::string s_;
    size_t i_ = 0;
};

inline Value parse_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path);
    std::stringstream ss;
    ss << in.rdbuf();
    return Parser(ss.str()).parse();
}

}  // namespace sdxl_test::json
