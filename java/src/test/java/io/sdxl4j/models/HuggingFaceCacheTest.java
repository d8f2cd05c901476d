package io.sdxl4j.models;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Cache-root rules of huggingface_hub's constants.py and the offline refs/snapshots lookup of snapshot_download. */
class HuggingFaceCacheTest {
    private static final String REPO = "stabilityai/stable-diffusion-xl-base-1.0";
    private static final String MAIN_HASH = "462165984030d82259a11f4367a4eed129e94a7b";
    private static final String FP16_HASH = "bf714989e22c57ddc1c453bf74dab4521acb81d8";
    private static final String PINNED_HASH = "76d28af79639c28a79fa5c6c6468febd3490a37e";
    private static final Path HOME = Path.of("/home/u");

    @TempDir
    Path root;

    private HuggingFaceCache cache;
    private Path repo;

    @BeforeEach
    void layOutCache() throws IOException {
        cache = new HuggingFaceCache(root);
        repo = root.resolve("models--stabilityai--stable-diffusion-xl-base-1.0");
        Files.createDirectories(repo.resolve("refs"));
        Files.createDirectories(repo.resolve("blobs"));
        Files.writeString(repo.resolve("refs/main"), MAIN_HASH);
        Files.writeString(repo.resolve("refs/fp16"), FP16_HASH + "\n"); // hand-edited, with a newline
        Files.createDirectories(repo.resolve("snapshots/" + MAIN_HASH + "/unet"));
        Files.createDirectories(repo.resolve("snapshots/" + FP16_HASH));
        Files.createDirectories(repo.resolve("snapshots/" + PINNED_HASH));
    }

    private static Map<String, String> env(String... kv) {
        Map<String, String> env = new HashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            env.put(kv[i], kv[i + 1]);
        }
        return env;
    }

    @Test
    void defaultRootFollowsHuggingFaceHubConstants() {
        assertEquals(Path.of("/home/u/.cache/huggingface/hub"), HuggingFaceCache.defaultRoot(env(), HOME));
        assertEquals(Path.of("/data/hf/hub"), HuggingFaceCache.defaultRoot(env("HF_HOME", "/data/hf"), HOME));
        assertEquals(Path.of("/xdg/huggingface/hub"),
                HuggingFaceCache.defaultRoot(env("XDG_CACHE_HOME", "/xdg"), HOME));
        assertEquals(Path.of("/data/hf/hub"),
                HuggingFaceCache.defaultRoot(env("HF_HOME", "/data/hf", "XDG_CACHE_HOME", "/xdg"), HOME));
        assertEquals(Path.of("/old"), HuggingFaceCache.defaultRoot(
                env("HUGGINGFACE_HUB_CACHE", "/old", "HF_HOME", "/data/hf"), HOME));
        assertEquals(Path.of("/new"), HuggingFaceCache.defaultRoot(
                env("HF_HUB_CACHE", "/new", "HUGGINGFACE_HUB_CACHE", "/old", "HF_HOME", "/data/hf"), HOME));
        // An empty variable counts as unset.
        assertEquals(Path.of("/data/hf/hub"),
                HuggingFaceCache.defaultRoot(env("HF_HUB_CACHE", "", "HF_HOME", "/data/hf"), HOME));
    }

    @Test
    void defaultRootExpandsUserAndVariables() {
        assertEquals(Path.of("/home/u/models"), HuggingFaceCache.defaultRoot(env("HF_HUB_CACHE", "~/models"), HOME));
        // $HOME wins over the account's home, as in Python's expanduser.
        assertEquals(Path.of("/other/.cache/huggingface/hub"),
                HuggingFaceCache.defaultRoot(env("HOME", "/other/"), HOME));
        assertEquals(Path.of("/mnt/big/hub"),
                HuggingFaceCache.defaultRoot(env("HF_HOME", "$DISK/big", "DISK", "/mnt"), HOME));
        assertEquals(Path.of("/mnt/cache/x"),
                HuggingFaceCache.defaultRoot(env("HF_HUB_CACHE", "${DISK}/cache/x", "DISK", "/mnt"), HOME));
        assertEquals(Path.of("/$UNSET/hub"), HuggingFaceCache.defaultRoot(env("HF_HOME", "/$UNSET"), HOME));
        assertEquals(Path.of("~other/hub"), HuggingFaceCache.defaultRoot(env("HF_HOME", "~other"), HOME));
    }

    @Test
    void resolvesMainThroughRefs() {
        assertEquals(repo.resolve("snapshots/" + MAIN_HASH), cache.resolve(REPO));
        assertEquals(repo.resolve("snapshots/" + MAIN_HASH), cache.resolve(REPO, null));
        assertEquals(repo.resolve("snapshots/" + MAIN_HASH), cache.resolve(REPO, ""));
    }

    @Test
    void resolvesBranchWithTrailingNewline() {
        assertEquals(repo.resolve("snapshots/" + FP16_HASH), cache.resolve(REPO, "fp16"));
    }

    @Test
    void fullCommitHashIsUsedWithoutRefs() {
        assertEquals(repo.resolve("snapshots/" + PINNED_HASH), cache.resolve(REPO, PINNED_HASH));
    }

    @Test
    void missingRepoNamesPathsAndDownloadCommand() {
        SdxlException e = assertThrows(SdxlException.class,
                () -> cache.resolve("stabilityai/stable-diffusion-xl-refiner-1.0"));
        assertEquals(ErrorCode.NOT_FOUND, e.code());
        String m = e.getMessage();
        assertTrue(m.contains(root.resolve("models--stabilityai--stable-diffusion-xl-refiner-1.0").toString()), m);
        assertTrue(m.contains("huggingface-cli download stabilityai/stable-diffusion-xl-refiner-1.0"), m);
    }

    @Test
    void missingRefListsThePresentOnes() {
        SdxlException e = assertThrows(SdxlException.class, () -> cache.resolve(REPO, "v2"));
        assertEquals(ErrorCode.NOT_FOUND, e.code());
        String m = e.getMessage();
        assertTrue(m.contains(repo.resolve("refs").resolve("v2").toString()), m);
        assertTrue(m.contains("fp16, main"), m);
        assertTrue(m.contains("--revision v2"), m);
        // huggingface_hub's commit pattern is lower-case hex only: an upper-case hash is looked up as a ref.
        assertEquals(ErrorCode.NOT_FOUND,
                assertThrows(SdxlException.class, () -> cache.resolve(REPO, MAIN_HASH.toUpperCase())).code());
    }

    @Test
    void missingSnapshotIsReported() throws IOException {
        String gone = "0123456789abcdef0123456789abcdef01234567";
        Files.writeString(repo.resolve("refs/broken"), gone);
        for (String revision : new String[] {"broken", gone}) {
            SdxlException e = assertThrows(SdxlException.class, () -> cache.resolve(REPO, revision));
            assertEquals(ErrorCode.NOT_FOUND, e.code());
            assertTrue(e.getMessage().contains(repo.resolve("snapshots").resolve(gone).toString()), e.getMessage());
        }
    }

    @Test
    void corruptRefAndUnsafeRevisionsAreRejected() throws IOException {
        Files.writeString(repo.resolve("refs/junk"), "../../../etc");
        assertEquals(ErrorCode.BAD_MODEL_FILE,
                assertThrows(SdxlException.class, () -> cache.resolve(REPO, "junk")).code());
        for (String revision : new String[] {"../main", "/abs", "a//b", "refs/./main", "a\\b"}) {
            assertEquals(ErrorCode.INVALID_ARGUMENT,
                    assertThrows(SdxlException.class, () -> cache.resolve(REPO, revision), revision).code());
        }
        assertEquals(ErrorCode.INVALID_ARGUMENT,
                assertThrows(SdxlException.class, () -> cache.resolve("../escape")).code());
    }

    @Test
    void slashedBranchNamesWork() throws IOException {
        Files.createDirectories(repo.resolve("refs/refs/pr"));
        Files.writeString(repo.resolve("refs/refs/pr/1"), PINNED_HASH);
        assertEquals(repo.resolve("snapshots/" + PINNED_HASH), cache.resolve(REPO, "refs/pr/1"));
    }

    @Test
    void folderNames() {
        assertEquals("models--stabilityai--stable-diffusion-xl-base-1.0", HuggingFaceCache.folderName(REPO));
        assertEquals("models--gpt2", HuggingFaceCache.folderName("gpt2"));
    }

    @Test
    void looksLikeRepoId() throws IOException {
        assertTrue(HuggingFaceCache.looksLikeRepoId(REPO));
        assertTrue(HuggingFaceCache.looksLikeRepoId("madebyollin/sdxl-vae-fp16-fix"));
        assertTrue(HuggingFaceCache.looksLikeRepoId("Org_1/Name.v2"));
        for (String s : new String[] {"gpt2", "a/b/c", "", "/abs/path", "org/", "/name", "org--x/name",
            "org/na..me", "org/-name", "org/name.", "org/na me", "./models", "C:\\models\\sdxl"}) {
            assertFalse(HuggingFaceCache.looksLikeRepoId(s), s);
        }
        assertFalse(HuggingFaceCache.looksLikeRepoId(null));
        // "org/name"-shaped but existing, relative to the working directory: a path, not a repo id.
        Path local = Path.of("target", "repo-id-shaped");
        Files.createDirectories(local);
        assertFalse(HuggingFaceCache.looksLikeRepoId("target/repo-id-shaped"));
        assertTrue(HuggingFaceCache.looksLikeRepoId("target/no-such-folder-here"));
    }

    @Test
    void modelArgumentIsAFolderOrARepoId() {
        Path folder = repo.resolve("snapshots/" + MAIN_HASH);
        assertEquals(folder, cache.resolveModelArgument(folder.toString(), null));
        assertEquals(repo.resolve("snapshots/" + FP16_HASH), cache.resolveModelArgument(REPO, "fp16"));
        assertEquals(ErrorCode.NOT_FOUND, assertThrows(SdxlException.class,
                () -> cache.resolveModelArgument(root.resolve("nothing/here/at/all").toString(), null)).code());
    }
}
