package io.sdxl4j.bench;

import org.bytedeco.javacpp.Loader;

/** Loads LibTorch (CPU) safely before its first class is touched. */
final class TorchSupport {
    private TorchSupport() {}

    static void load() {
        // With a system libtorch installed, the first run with an empty JavaCPP cache can crash unless the
        // pytorch resources are cached before the first torch class loads (see shared/notes/BUILD-FACTS.md).
        try {
            Loader.cacheResources("/org/bytedeco/pytorch/" + Loader.getPlatform() + "/");
        } catch (java.io.IOException e) {
            throw new IllegalStateException("cannot extract LibTorch: " + e.getMessage(), e);
        }
    }
}
