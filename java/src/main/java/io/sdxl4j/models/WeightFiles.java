package io.sdxl4j.models;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.TreeSet;

/**
 * Finds a component's weight files the way diffusers/transformers name them: {@code <base>[.<variant>].safetensors},
 * or a sharded checkpoint's {@code <base>.safetensors.index[.<variant>].json} and the shards its weight_map names.
 */
final class WeightFiles {
    private WeightFiles() {}

    static List<Path> resolve(Path dir, String base, String variant) {
        String v = variant == null || variant.isEmpty() ? "" : "." + variant;
        Path single = dir.resolve(base + v + ".safetensors");
        if (Files.isRegularFile(single)) {
            return List.of(single);
        }
        Path index = dir.resolve(base + ".safetensors.index" + v + ".json");
        if (Files.isRegularFile(index)) {
            return shards(index);
        }
        String hint = Files.isRegularFile(dir.resolve(base + v + ".bin"))
                ? " (only PyTorch .bin weights are there; sdxl4j reads safetensors: convert them first)" : "";
        throw new SdxlException(ErrorCode.NOT_FOUND, dir + ": no weights " + single.getFileName() + " or "
                + index.getFileName() + hint + (v.isEmpty() ? "" : "; is the \"" + variant + "\" variant downloaded?"));
    }

    private static List<Path> shards(Path index) {
        try {
            JsonNode map = new ObjectMapper().readTree(index.toFile()).get("weight_map");
            if (map == null || !map.isObject() || map.isEmpty()) {
                throw new SdxlException(ErrorCode.BAD_MODEL_FILE, index + ": \"weight_map\" must be a non-empty object");
            }
            TreeSet<String> names = new TreeSet<>();
            for (Iterator<JsonNode> it = map.elements(); it.hasNext();) {
                JsonNode n = it.next();
                if (!n.isTextual() || n.asText().contains("/") || n.asText().contains("\\")) {
                    throw new SdxlException(ErrorCode.BAD_MODEL_FILE, index + ": bad shard name " + n);
                }
                names.add(n.asText());
            }
            List<Path> out = new ArrayList<>();
            for (String name : names) {
                Path shard = index.resolveSibling(name);
                if (!Files.isRegularFile(shard)) {
                    throw new SdxlException(ErrorCode.NOT_FOUND, index + " names shard " + name + ", which is missing");
                }
                out.add(shard);
            }
            return out;
        } catch (IOException e) {
            throw new SdxlException(ErrorCode.BAD_MODEL_FILE, index + ": not valid JSON: " + e.getMessage(), e);
        }
    }

    static io.sdxl4j.nat.StringVector toNative(List<Path> files) {
        return new io.sdxl4j.nat.StringVector(files.stream().map(p -> p.toAbsolutePath().toString()).toArray(String[]::new));
    }
}
