package io.sdxl4j.io;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import io.sdxl4j.Tensor;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Writes tensors to a .safetensors file: {@code __metadata__} first, tensors sorted by name with their data in
 * the same order, the header padded with spaces to a multiple of 8 bytes (as the reference writers do).
 */
public final class SafetensorsWriter {
    private SafetensorsWriter() {}

    public static void write(Path path, Map<String, Tensor> tensors, Map<String, String> metadata) {
        ObjectMapper json = new ObjectMapper();
        ObjectNode header = json.createObjectNode();
        if (metadata != null && !metadata.isEmpty()) {
            ObjectNode meta = header.putObject("__metadata__");
            metadata.forEach(meta::put);
        }
        List<byte[]> blobs = new ArrayList<>();
        long offset = 0;
        for (Map.Entry<String, Tensor> e : new TreeMap<>(tensors).entrySet()) {
            Tensor t = e.getValue();
            byte[] bytes = t.toByteArray();
            ObjectNode info = header.putObject(e.getKey());
            info.put("dtype", t.dtype().name());
            ArrayNode shape = info.putArray("shape");
            for (long d : t.shape()) {
                shape.add(d);
            }
            info.putArray("data_offsets").add(offset).add(offset + bytes.length);
            offset += bytes.length;
            blobs.add(bytes);
        }
        try {
            byte[] head = json.writeValueAsString(header).getBytes(StandardCharsets.UTF_8);
            int padded = (head.length + 7) / 8 * 8;
            try (OutputStream out = Files.newOutputStream(path)) {
                out.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(padded).array());
                out.write(head);
                for (int i = head.length; i < padded; i++) {
                    out.write(' ');
                }
                for (byte[] b : blobs) {
                    out.write(b);
                }
            }
        } catch (IOException e) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "cannot write " + path + ": " + e.getMessage(), e);
        }
    }
}
