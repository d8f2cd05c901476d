package io.sdxl4j.server;

/**
 * A request that gets an error answer: the HTTP status, a message for people, and for the OpenAI error object the
 * field at fault ({@code param}) and a machine-readable {@code code}. Each API renders it in its own error format;
 * no stack trace ever reaches a response.
 */
final class ApiException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    final int status;
    final String param;
    final String code;
    /** Seconds for a Retry-After header, or 0 for none. */
    final int retryAfterSeconds;

    ApiException(int status, String message, String param, String code, int retryAfterSeconds) {
        super(message, null, false, false);
        this.status = status;
        this.param = param;
        this.code = code;
        this.retryAfterSeconds = retryAfterSeconds;
    }

    /** 400 for the named field ({@code field} may be null for the body as a whole). */
    static ApiException badRequest(String field, String message) {
        return new ApiException(400, field == null ? message : field + ": " + message, field, "invalid_value", 0);
    }

    static ApiException notFound(String message, String param, String code) {
        return new ApiException(404, message, param, code, 0);
    }

    /** The OpenAI error object's type for this status. */
    String openAiType() {
        return switch (status) {
            case 401 -> "invalid_request_error";
            case 429 -> "requests";
            default -> status >= 500 ? "server_error" : "invalid_request_error";
        };
    }
}
