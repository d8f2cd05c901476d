package io.sdxl4j.images;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import java.math.BigDecimal;
import java.math.MathContext;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalInt;
import java.util.OptionalLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The generation parameters of one image as AUTOMATIC1111's infotext (the PNG "parameters" text chunk), written
 * as its {@code create_infotext} writes it and read as its {@code parse_generation_parameters} reads it:
 *
 * <pre>
 * a prompt, possibly on
 * several lines
 * Negative prompt: the negative prompt (line omitted when empty)
 * Steps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 123, Size: 1024x1024, ...
 * </pre>
 *
 * Keys appear in A1111's order (Steps, Sampler, Schedule type, CFG scale, Seed, Size, Model hash, Model, VAE,
 * Denoising strength, Clip skip, then other extra keys, then Refiner and Refiner switch at, then Version); a key
 * that was not set is absent. A value is JSON-quoted (A1111's {@code quote}) when it contains a comma, a colon or a
 * newline; sdxl4j also quotes values that are empty, contain a carriage return, start with a double quote or
 * start or end with whitespace, which A1111 would otherwise read back changed (A1111 still reads these
 * correctly). Numbers are written as
 * Python's {@code str}, except that a whole float drops its ".0" (CFG scale: 7, as A1111's UI writes it).
 *
 * <p>The text format itself cannot carry everything: A1111 strips each prompt line, a prompt line starting
 * with "Negative prompt:" starts the negative prompt, and the parameter line is only recognised when it has at
 * least three keys. {@link #parse} follows A1111 in all of these.
 */
public final class GenerationParameters {
    /** The keys A1111 writes before its extra parameters, in its order. */
    private static final List<String> LEADING_KEYS = List.of("Steps", "Sampler", "Schedule type", "CFG scale",
            "Image CFG scale", "Seed", "Face restoration", "Size", "Model hash", "Model", "FP8 weight",
            "Cache FP16 weight for LoRA", "VAE hash", "VAE", "Variation seed", "Variation seed strength",
            "Seed resize from", "Denoising strength", "Conditional mask weight", "Clip skip", "ENSD",
            "Token merging ratio", "Token merging ratio hr", "Init image hash", "RNG", "Tiling");
    /** Extra parameters that A1111 adds while sampling, so after the other extras, in this order. */
    private static final List<String> REFINER_KEYS = List.of("Refiner", "Refiner switch at");
    /** The keys A1111 writes after its extra parameters. */
    private static final List<String> TRAILING_KEYS = List.of("Version", "User");

    /** A1111's re_param: a key (word character, then word characters, spaces, '-' or '/'), a quoted or plain value. */
    private static final Pattern PARAM = Pattern.compile(
            "\\s*(\\w[\\w \\-/]+):\\s*(\"(?:\\\\.|[^\\\\\"])+\"|[^,]*)(?:,|$)", Pattern.UNICODE_CHARACTER_CLASS);
    private static final Pattern KEY = Pattern.compile("\\w[\\w \\-/]+", Pattern.UNICODE_CHARACTER_CLASS);
    private static final Pattern SIZE = Pattern.compile("^(\\d+)x(\\d+)$");
    private static final String NEGATIVE_PREFIX = "Negative prompt:";
    private static final ObjectMapper JSON = new ObjectMapper();

    private final String prompt;
    private final String negativePrompt;
    private final Map<String, String> params;

    private GenerationParameters(String prompt, String negativePrompt, Map<String, String> params) {
        this.prompt = prompt;
        this.negativePrompt = negativePrompt;
        this.params = Collections.unmodifiableMap(new LinkedHashMap<>(params));
    }

    public static Builder builder() {
        return new Builder();
    }

    public String prompt() {
        return prompt;
    }

    /** The negative prompt; empty when there is none. */
    public String negativePrompt() {
        return negativePrompt;
    }

    /** The parameters (key to unquoted text value) in the order they are written. */
    public Map<String, String> parameters() {
        return params;
    }

    public Optional<String> get(String key) {
        return Optional.ofNullable(params.get(key));
    }

    public OptionalInt steps() {
        return intValue("Steps");
    }

    public Optional<String> sampler() {
        return get("Sampler");
    }

    public OptionalDouble cfgScale() {
        return doubleValue("CFG scale");
    }

    public OptionalLong seed() {
        String v = params.get("Seed");
        try {
            return v == null ? OptionalLong.empty() : OptionalLong.of(Long.parseLong(v.trim()));
        } catch (NumberFormatException e) {
            return OptionalLong.empty();
        }
    }

    /** Width from "Size: WxH". */
    public OptionalInt width() {
        return sizePart(1);
    }

    /** Height from "Size: WxH". */
    public OptionalInt height() {
        return sizePart(2);
    }

    public OptionalDouble denoisingStrength() {
        return doubleValue("Denoising strength");
    }

    private OptionalInt intValue(String key) {
        String v = params.get(key);
        try {
            return v == null ? OptionalInt.empty() : OptionalInt.of(Integer.parseInt(v.trim()));
        } catch (NumberFormatException e) {
            return OptionalInt.empty();
        }
    }

    private OptionalDouble doubleValue(String key) {
        String v = params.get(key);
        try {
            return v == null ? OptionalDouble.empty() : OptionalDouble.of(Double.parseDouble(v.trim()));
        } catch (NumberFormatException e) {
            return OptionalDouble.empty();
        }
    }

    private OptionalInt sizePart(int group) {
        String v = params.get("Size");
        Matcher m = v == null ? null : SIZE.matcher(v);
        if (m == null || !m.matches()) {
            return OptionalInt.empty();
        }
        try {
            return OptionalInt.of(Integer.parseInt(m.group(group)));
        } catch (NumberFormatException e) {
            return OptionalInt.empty();
        }
    }

    /** The infotext, as A1111's create_infotext returns it (and as it goes into the PNG "parameters" chunk). */
    public String toInfotext() {
        StringBuilder line = new StringBuilder();
        for (Map.Entry<String, String> e : params.entrySet()) {
            if (line.length() > 0) {
                line.append(", ");
            }
            String k = e.getKey();
            String v = e.getValue();
            // A1111 writes a bare key when the value equals it.
            line.append(k.equals(v) ? k : k + ": " + quote(v));
        }
        String negative = negativePrompt.isEmpty() ? "" : "\n" + NEGATIVE_PREFIX + " " + negativePrompt;
        return pythonStrip(prompt + negative + "\n" + line);
    }

    @Override
    public String toString() {
        return toInfotext();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof GenerationParameters g && g.prompt.equals(prompt)
                && g.negativePrompt.equals(negativePrompt) && g.params.equals(params)
                && List.copyOf(g.params.keySet()).equals(List.copyOf(params.keySet()));
    }

    @Override
    public int hashCode() {
        return prompt.hashCode() * 31 * 31 + negativePrompt.hashCode() * 31 + params.hashCode();
    }

    /**
     * Reads an infotext as A1111's parse_generation_parameters: the last line holds the parameters when it has at
     * least three {@code key: value} pairs (otherwise it belongs to the prompt); lines up to "Negative prompt:"
     * form the prompt, the rest the negative prompt; each line is stripped; quoted values are unquoted. Unlike
     * A1111, no defaults are filled in for absent keys and "Size" stays one value. CRLF line ends are read as LF.
     */
    public static GenerationParameters parse(String infotext) {
        String text = pythonStrip(infotext.replace("\r\n", "\n"));
        List<String> lines = new ArrayList<>(List.of(text.split("\n", -1)));
        String last = lines.remove(lines.size() - 1);
        List<String[]> pairs = findParams(last);
        if (pairs.size() < 3) {
            lines.add(last);
            pairs = List.of();
        }
        StringBuilder positive = new StringBuilder();
        StringBuilder negative = new StringBuilder();
        boolean inNegative = false;
        for (String raw : lines) {
            String line = pythonStrip(raw);
            if (line.startsWith(NEGATIVE_PREFIX)) {
                inNegative = true;
                line = pythonStrip(line.substring(NEGATIVE_PREFIX.length()));
            }
            StringBuilder target = inNegative ? negative : positive;
            if (target.length() > 0) {
                target.append('\n');
            }
            target.append(line);
        }
        Map<String, String> params = new LinkedHashMap<>();
        for (String[] kv : pairs) {
            String v = kv[1];
            if (v.isEmpty()) {
                continue; // A1111 fails on v[0] and skips the key
            }
            params.put(kv[0], v.length() >= 2 && v.charAt(0) == '"' && v.charAt(v.length() - 1) == '"'
                    ? unquote(v) : v);
        }
        return new GenerationParameters(positive.toString(), negative.toString(), params);
    }

    private static List<String[]> findParams(String line) {
        List<String[]> found = new ArrayList<>();
        Matcher m = PARAM.matcher(line);
        while (m.find()) {
            found.add(new String[] {m.group(1), m.group(2)});
        }
        return found;
    }

    /** A1111's quote (JSON with ensure_ascii=False, as Python's json.dumps), plus the cases in the class doc. */
    static String quote(String v) {
        boolean a1111 = v.indexOf(',') >= 0 || v.indexOf('\n') >= 0 || v.indexOf(':') >= 0;
        boolean unsafe = v.isEmpty() || v.charAt(0) == '"' || v.indexOf('\r') >= 0 || isPythonSpace(v.codePointAt(0))
                || isPythonSpace(v.codePointBefore(v.length()));
        return a1111 || unsafe ? jsonString(v) : v;
    }

    /** Python's json.dumps(v, ensure_ascii=False) for a string. */
    static String jsonString(String v) {
        StringBuilder sb = new StringBuilder(v.length() + 2).append('"');
        for (int i = 0; i < v.length(); i++) {
            char c = v.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                case '\b' -> sb.append("\\b");
                case '\f' -> sb.append("\\f");
                default -> {
                    if (c < 0x20) {
                        sb.append(String.format("\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
                }
            }
        }
        return sb.append('"').toString();
    }

    /** A1111's unquote: json.loads, or the text unchanged when it is not valid JSON. */
    static String unquote(String v) {
        try {
            Object parsed = JSON.readValue(v, Object.class);
            return parsed instanceof String s ? s : v;
        } catch (JsonProcessingException e) {
            return v;
        }
    }

    /** Python's str.strip(): removes leading and trailing characters for which str.isspace() holds. */
    static String pythonStrip(String s) {
        int start = 0;
        int end = s.length();
        while (start < end && isPythonSpace(s.codePointAt(start))) {
            start += Character.charCount(s.codePointAt(start));
        }
        while (end > start && isPythonSpace(s.codePointBefore(end))) {
            end -= Character.charCount(s.codePointBefore(end));
        }
        return s.substring(start, end);
    }

    /** Python's str.isspace() for one code point (includes U+001C..U+001F, U+0085 and U+00A0). */
    static boolean isPythonSpace(int cp) {
        if (cp <= 0x20) {
            return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F);
        }
        return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028
                || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
    }

    /** A float as Python's str() writes it (shortest repr), but without ".0" for whole values. */
    static String formatNumber(double v) {
        if (Double.isNaN(v) || Double.isInfinite(v)) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "parameter value must be finite, got " + v);
        }
        if (v == Math.rint(v) && Math.abs(v) < 1e15) {
            return Long.toString((long) v);
        }
        // The shortest decimal that reads back as the same double, as Python's repr.
        BigDecimal exact = new BigDecimal(v);
        BigDecimal shortest = exact;
        for (int digits = 1; digits <= 17; digits++) {
            BigDecimal candidate = exact.round(new MathContext(digits));
            if (candidate.doubleValue() == v) {
                shortest = candidate;
                break;
            }
        }
        int exponent = shortest.precision() - shortest.scale() - 1;
        if (exponent < -4 || exponent >= 16) {
            return pythonScientific(shortest);
        }
        return shortest.stripTrailingZeros().toPlainString();
    }

    private static String pythonScientific(BigDecimal d) {
        String digits = d.unscaledValue().abs().toString().replaceAll("0+$", "");
        int exponent = d.precision() - d.scale() - 1;
        String mantissa = digits.length() == 1 ? digits : digits.charAt(0) + "." + digits.substring(1);
        String sign = d.signum() < 0 ? "-" : "";
        return sign + mantissa + "e" + (exponent < 0 ? "-" : "+") + String.format("%02d", Math.abs(exponent));
    }

    /** Builds parameters; every setter is optional and a key that is never set is not written. */
    public static final class Builder {
        private String prompt = "";
        private String negativePrompt = "";
        private final Map<String, String> leading = new LinkedHashMap<>();
        private final Map<String, String> extra = new LinkedHashMap<>();
        private final Map<String, String> refinerKeys = new LinkedHashMap<>();
        private final Map<String, String> trailing = new LinkedHashMap<>();

        private Builder() {}

        public Builder prompt(String prompt) {
            this.prompt = prompt == null ? "" : prompt;
            return this;
        }

        public Builder negativePrompt(String negativePrompt) {
            this.negativePrompt = negativePrompt == null ? "" : negativePrompt;
            return this;
        }

        public Builder steps(int steps) {
            return leading("Steps", Integer.toString(steps));
        }

        /** A1111's sampler name, e.g. "DPM++ 2M" (with the schedule separate) or "DPM++ 2M Karras" (before 1.9). */
        public Builder sampler(String sampler) {
            return leading("Sampler", sampler);
        }

        /** A1111 1.9+'s "Schedule type", e.g. "Karras". */
        public Builder scheduleType(String scheduleType) {
            return leading("Schedule type", scheduleType);
        }

        public Builder cfgScale(double cfgScale) {
            return leading("CFG scale", formatNumber(cfgScale));
        }

        public Builder seed(long seed) {
            return leading("Seed", Long.toString(seed));
        }

        public Builder size(int width, int height) {
            return leading("Size", width + "x" + height);
        }

        public Builder modelHash(String modelHash) {
            return leading("Model hash", modelHash);
        }

        public Builder model(String model) {
            return leading("Model", model);
        }

        public Builder vae(String vae) {
            return leading("VAE", vae);
        }

        public Builder denoisingStrength(double strength) {
            return leading("Denoising strength", formatNumber(strength));
        }

        public Builder clipSkip(int clipSkip) {
            return leading("Clip skip", Integer.toString(clipSkip));
        }

        /**
         * The refiner model. A1111 adds "Refiner" and then "Refiner switch at" to its extra parameters while
         * sampling, after those set up before it; so they are written after the other extra keys.
         */
        public Builder refiner(String refiner) {
            return put(refinerKeys, "Refiner", refiner);
        }

        /** The fraction of the steps after which the refiner takes over. */
        public Builder refinerSwitchAt(double fraction) {
            return put(refinerKeys, "Refiner switch at", formatNumber(fraction));
        }

        /** Written last, as A1111's "Version: v1.10.1"; e.g. "sdxl4j 0.1.0". */
        public Builder version(String version) {
            return put(trailing, "Version", version);
        }

        /**
         * Any other key, in the order of the calls, between A1111's fixed keys and the refiner keys (where its
         * extra_generation_params go); a key that A1111 writes in a fixed place goes to that place. Null removes.
         */
        public Builder extra(String key, String value) {
            if (LEADING_KEYS.contains(key)) {
                return leading(key, value);
            }
            if (TRAILING_KEYS.contains(key)) {
                return put(trailing, key, value);
            }
            if (REFINER_KEYS.contains(key)) {
                return put(refinerKeys, key, value);
            }
            return put(extra, key, value);
        }

        private Builder leading(String key, String value) {
            return put(leading, key, value);
        }

        private Builder put(Map<String, String> section, String key, String value) {
            if (key == null || !KEY.matcher(key).matches()) {
                throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "infotext key must be a word character then"
                        + " word characters, spaces, '-' or '/', got " + (key == null ? "null" : "\"" + key + "\""));
            }
            if (value == null) {
                section.remove(key);
            } else {
                section.put(key, value);
            }
            return this;
        }

        public GenerationParameters build() {
            Map<String, String> ordered = new LinkedHashMap<>();
            for (String key : LEADING_KEYS) {
                if (leading.containsKey(key)) {
                    ordered.put(key, leading.get(key));
                }
            }
            ordered.putAll(extra);
            for (String key : REFINER_KEYS) {
                if (refinerKeys.containsKey(key)) {
                    ordered.put(key, refinerKeys.get(key));
                }
            }
            for (String key : TRAILING_KEYS) {
                if (trailing.containsKey(key)) {
                    ordered.put(key, trailing.get(key));
                }
            }
            return new GenerationParameters(prompt, negativePrompt, ordered);
        }
    }
}
