package io.sdxl4j.cli;

/** Test access to the CLI's package-private parsing helpers. */
public final class GenerateAccess {
    private GenerateAccess() {}

    /** {@code --embedding FILE[:TOKEN]} split into {FILE, TOKEN or null}. */
    public static String[] spec(String s) {
        return Generate.embeddingSpec(s);
    }
}
