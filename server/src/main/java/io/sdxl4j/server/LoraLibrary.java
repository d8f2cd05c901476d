package io.sdxl4j.server;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.stream.Stream;

/**
 * The LoRA files a prompt's {@code <lora:NAME:WEIGHT>} tags may name: {@code NAME.safetensors} anywhere under the
 * folder given to {@code serve --lora-dir} (as A1111's models/Lora). Looked up afresh on every request, so files
 * added or removed while the server runs count at once. Names only ever select files inside this folder.
 */
final class LoraLibrary {
    /** One file: its A1111 name (the file name's stem) and where it is, relative to the folder. */
    record Entry(String name, Path file, Path relative) {}

    private final Path folder;

    LoraLibrary(Path folder) {
        this.folder = folder.toAbsolutePath().normalize();
        if (!Files.isDirectory(this.folder)) {
            throw new IllegalArgumentException("--lora-dir " + folder + " is not a folder");
        }
    }

    /** Every LoRA file, sorted by relative path (so that a name found twice resolves to the same file each time). */
    List<Entry> list() {
        try (Stream<Path> files = Files.walk(folder)) {
            List<Entry> out = new ArrayList<>();
            files.filter(Files::isRegularFile).filter(f -> f.getFileName().toString().endsWith(".safetensors"))
                    .map(folder::relativize).sorted()
                    .forEach(r -> {
                        String n = r.getFileName().toString();
                        out.add(new Entry(n.substring(0, n.length() - ".safetensors".length()), folder.resolve(r), r));
                    });
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list the LoRA folder " + folder, e);
        }
    }

    Optional<Entry> find(String name) {
        return list().stream().filter(e -> e.name().equals(name)).findFirst();
    }
}
