package io.sdxl4j.models;

import io.sdxl4j.ErrorCode;
import io.sdxl4j.SdxlException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Finds models in the Hugging Face hub cache, offline, the way huggingface_hub's snapshot_download does when it
 * cannot or may not reach the hub: {@code <root>/models--{org}--{name}/refs/<revision>} holds a commit hash
 * (unless the revision is itself a full 40-hex-digit hash) and the model is the folder
 * {@code snapshots/<hash>} beside it. Nothing is downloaded.
 */
public final class HuggingFaceCache {
    public static final String DEFAULT_REVISION = "main";

    /** huggingface_hub's REGEX_COMMIT_HASH: a full lower-case hex SHA-1. */
    private static final Pattern COMMIT_HASH = Pattern.compile("^[0-9a-f]{40}$");
    /** One hub name part: letters, digits, '-', '_', '.' (the hub's validate_repo_id rules). */
    private static final Pattern NAME_PART = Pattern.compile("[A-Za-z0-9_.\\-]+");
    /** posixpath.expandvars: $name or ${name}, names of ASCII word characters. */
    private static final Pattern ENV_VARIABLE = Pattern.compile("\\$(\\w+|\\{[^}]*\\})");

    private final Path root;

    /** A cache at this root (the folder holding the models--* folders). */
    public HuggingFaceCache(Path root) {
        this.root = root;
    }

    /** The cache that huggingface_hub uses in this process's environment. */
    public static HuggingFaceCache fromEnvironment() {
        return new HuggingFaceCache(defaultRoot(System.getenv(), Path.of(System.getProperty("user.home"))));
    }

    /**
     * huggingface_hub's HF_HUB_CACHE: {@code $HF_HUB_CACHE}, else the deprecated {@code $HUGGINGFACE_HUB_CACHE},
     * else {@code <HF_HOME>/hub} where HF_HOME is {@code $HF_HOME}, else {@code $XDG_CACHE_HOME/huggingface}, else
     * {@code ~/.cache/huggingface}. A leading {@code ~} and {@code $VAR}/{@code ${VAR}} are expanded as Python's
     * expanduser/expandvars do (unknown variables stay as written; {@code ~user} is not expanded). An empty variable
     * counts as unset, where Python would use the empty string.
     *
     * @param env  the environment variables
     * @param home the home folder, used for {@code ~} ($HOME in env wins, as in Python)
     */
    public static Path defaultRoot(Map<String, String> env, Path home) {
        String hfHome = nonEmpty(env.get("HF_HOME"));
        if (hfHome == null) {
            String xdg = nonEmpty(env.get("XDG_CACHE_HOME"));
            hfHome = (xdg != null ? xdg : userHome(env, home) + "/.cache") + "/huggingface";
        }
        hfHome = expand(hfHome, env, home);
        String hub = nonEmpty(env.get("HF_HUB_CACHE"));
        if (hub == null) {
            hub = nonEmpty(env.get("HUGGINGFACE_HUB_CACHE"));
        }
        if (hub == null) {
            hub = hfHome + "/hub";
        }
        return Path.of(expand(hub, env, home));
    }

    /** Python's expanduser("~"): $HOME when set, else the account's home. */
    private static String userHome(Map<String, String> env, Path home) {
        String fromEnv = nonEmpty(env.get("HOME"));
        String h = fromEnv != null ? fromEnv : home.toString();
        // expanduser drops the home's trailing slashes before appending the rest
        while (h.length() > 1 && h.endsWith("/")) {
            h = h.substring(0, h.length() - 1);
        }
        return h;
    }

    private static String nonEmpty(String s) {
        return s == null || s.isEmpty() ? null : s;
    }

    /** Python's os.path.expandvars(os.path.expanduser(path)). */
    static String expand(String path, Map<String, String> env, Path home) {
        String userHome = userHome(env, home);
        if (path.equals("~")) {
            path = userHome;
        } else if (path.startsWith("~/")) {
            path = userHome + path.substring(1);
        }
        if (path.indexOf('$') < 0) {
            return path;
        }
        Matcher m = ENV_VARIABLE.matcher(path);
        StringBuilder out = new StringBuilder();
        while (m.find()) {
            String name = m.group(1);
            if (name.startsWith("{")) {
                name = name.substring(1, name.length() - 1);
            }
            String value = env.get(name);
            m.appendReplacement(out, Matcher.quoteReplacement(value != null ? value : m.group()));
        }
        m.appendTail(out);
        return out.toString();
    }

    public Path root() {
        return root;
    }

    /**
     * True for "org/name" as the hub spells repo ids (name parts of letters, digits, '-', '_', '.'; no "--" or
     * ".."; not starting or ending with '-' or '.'; at most 96 characters) that is not an existing file or folder:
     * an argument that names a model on the hub rather than a local path.
     */
    public static boolean looksLikeRepoId(String s) {
        if (!isRepoId(s, true)) {
            return false;
        }
        try {
            return !Files.exists(Path.of(s));
        } catch (InvalidPathException e) {
            return true;
        }
    }

    private static boolean isRepoId(String s, boolean requireOrg) {
        if (s == null || s.isEmpty() || s.length() > 96 || s.contains("--") || s.contains("..")) {
            return false;
        }
        String[] parts = s.split("/", -1);
        if (parts.length > 2 || (requireOrg && parts.length != 2)) {
            return false;
        }
        for (String part : parts) {
            if (!NAME_PART.matcher(part).matches() || part.startsWith("-") || part.startsWith(".")
                    || part.endsWith("-") || part.endsWith(".")) {
                return false;
            }
        }
        return true;
    }

    /** huggingface_hub's repo_folder_name for a model: "models--org--name". */
    public static String folderName(String repoId) {
        checkRepoId(repoId);
        return "models--" + repoId.replace("/", "--");
    }

    /** The cache folder of a repo (it may not exist). */
    public Path repoFolder(String repoId) {
        return root.resolve(folderName(repoId));
    }

    /** The snapshot folder of the repo's "main" revision. */
    public Path resolve(String repoId) {
        return resolve(repoId, DEFAULT_REVISION);
    }

    /**
     * The snapshot folder of a revision: a branch or tag name (read from refs/), or a full commit hash (used
     * directly). NOT_FOUND, naming the paths looked at and the command that downloads the model, when the repo,
     * the ref or the snapshot is not in the cache. The ref file's content is trimmed (huggingface_hub writes it
     * without a newline; a hand-edited one may have one).
     *
     * @param revision null or empty for "main"
     */
    public Path resolve(String repoId, String revision) {
        checkRepoId(repoId);
        String rev = revision == null || revision.isEmpty() ? DEFAULT_REVISION : revision;
        checkRevision(rev);
        Path repo = repoFolder(repoId);
        if (!Files.isDirectory(repo)) {
            throw new SdxlException(ErrorCode.NOT_FOUND, repoId + " is not in the Hugging Face cache: no folder "
                    + repo + " (cache root " + root + ", from HF_HUB_CACHE, HF_HOME or ~/.cache/huggingface). "
                    + downloadHint(repoId, rev) + ", or pass the path of a diffusers model folder instead.");
        }
        String hash;
        if (COMMIT_HASH.matcher(rev).matches()) {
            hash = rev;
        } else {
            Path ref = repo.resolve("refs").resolve(rev);
            if (!Files.isRegularFile(ref)) {
                throw new SdxlException(ErrorCode.NOT_FOUND, repoId + ": revision \"" + rev + "\" is not in the"
                        + " cache: no file " + ref + " (refs present: " + listRefs(repo.resolve("refs"))
                        + "; a full 40-digit commit hash is used without refs). " + downloadHint(repoId, rev) + ".");
            }
            try {
                hash = Files.readString(ref, StandardCharsets.UTF_8).trim();
            } catch (IOException e) {
                throw new SdxlException(ErrorCode.NOT_FOUND, repoId + ": cannot read " + ref + ": " + e, e);
            }
            if (!COMMIT_HASH.matcher(hash).matches()) {
                throw new SdxlException(ErrorCode.BAD_MODEL_FILE, ref + " should hold a 40-digit commit hash, found \""
                        + (hash.length() > 60 ? hash.substring(0, 60) + "..." : hash) + "\"");
            }
        }
        Path snapshot = repo.resolve("snapshots").resolve(hash);
        if (!Files.isDirectory(snapshot)) {
            throw new SdxlException(ErrorCode.NOT_FOUND, repoId + ": revision \"" + rev + "\" points to commit "
                    + hash + " but its snapshot folder " + snapshot + " is missing (an interrupted or pruned"
                    + " download). " + downloadHint(repoId, rev) + ".");
        }
        return snapshot;
    }

    /**
     * A model argument as the CLI takes it: an existing folder is used as it is; otherwise a repo id is resolved in
     * this cache. NOT_FOUND when it is neither.
     */
    public Path resolveModelArgument(String modelOrRepoId, String revision) {
        try {
            Path asPath = Path.of(modelOrRepoId);
            if (Files.isDirectory(asPath)) {
                return asPath;
            }
        } catch (InvalidPathException e) {
            // not a path: may still be a repo id
        }
        if (isRepoId(modelOrRepoId, false)) {
            return resolve(modelOrRepoId, revision);
        }
        throw new SdxlException(ErrorCode.NOT_FOUND, "\"" + modelOrRepoId + "\" is neither a model folder nor a"
                + " Hugging Face repo id such as stabilityai/stable-diffusion-xl-base-1.0");
    }

    private static void checkRepoId(String repoId) {
        if (!isRepoId(repoId, false)) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "not a Hugging Face repo id: \"" + repoId
                    + "\" (expected org/name, e.g. stabilityai/stable-diffusion-xl-base-1.0)");
        }
    }

    /** Branch and tag names may hold '/', but must stay inside refs/. */
    private static void checkRevision(String rev) {
        boolean ok = !rev.startsWith("/") && !rev.endsWith("/") && rev.indexOf('\\') < 0 && rev.indexOf('\0') < 0;
        for (String part : rev.split("/", -1)) {
            ok &= !part.isEmpty() && !part.equals(".") && !part.equals("..");
        }
        if (!ok) {
            throw new SdxlException(ErrorCode.INVALID_ARGUMENT, "not a revision name: \"" + rev + "\"");
        }
    }

    private static String downloadHint(String repoId, String rev) {
        String revisionFlag = DEFAULT_REVISION.equals(rev) ? "" : " --revision " + rev;
        return "Download it with `huggingface-cli download " + repoId + revisionFlag + "` (or `hf download "
                + repoId + revisionFlag + "`)";
    }

    private static String listRefs(Path refs) {
        if (!Files.isDirectory(refs)) {
            return "none, no refs folder";
        }
        List<String> names = new ArrayList<>();
        try (Stream<Path> files = Files.walk(refs)) {
            files.filter(Files::isRegularFile).forEach(f -> names.add(refs.relativize(f).toString()));
        } catch (IOException e) {
            return "unreadable";
        }
        names.sort(null);
        return names.isEmpty() ? "none" : String.join(", ", names);
    }
}
