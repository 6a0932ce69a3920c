/**
 * Errors. Every failure of a call is a {@link ShoalError}; the subclasses let you `catch` by kind:
 *
 * | class               | when                                           | `status` |
 * |---------------------|------------------------------------------------|----------|
 * | `ValidationError`   | the server refused the input                   | 400, 415, 422 |
 * | `AuthError`         | missing or wrong API key                       | 401, 403 |
 * | `PermissionDeniedError` | the sandbox's filesystem refused (`EACCES`, `EPERM`, read-only) | 403 `permission_denied` |
 * | `NotFoundError`     | no such sandbox, network or endpoint           | 404      |
 * | `ConflictError`     | name taken, network still has members, …       | 409      |
 * | `UnavailableError`  | the server is busy (after the retries)         | 503      |
 * | `ShoalError`        | any other HTTP error (e.g. 500 `internal`)     | the status |
 * | `ConnectionError`   | no answer at all (refused, DNS, reset)         | 0        |
 * | `TimeoutError`      | no answer within `timeoutMs`                   | 0        |
 * | `ConfigError`       | no API key found                               | 0        |
 * @module
 */

export interface ShoalErrorInit {
  /** HTTP status; 0 when the server never answered. */
  status: number;
  /** The API's stable error code (`not_found`, `conflict`, …) or the SDK's own (`unreachable`, `timeout`, `config`). */
  code: string;
  message: string;
  cause?: unknown;
  /** `METHOD /path` of the request that failed. */
  request?: string;
}

export class ShoalError extends Error {
  /** HTTP status; 0 when the server never answered. */
  readonly status: number;
  /** The API's stable error code, e.g. `not_found`, `conflict`, `invalid_argument`, `unauthorized`. */
  readonly code: string;
  /** `METHOD /path` of the request that failed, when there was one. */
  readonly request: string | undefined;

  constructor(init: ShoalErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.status = init.status;
    this.code = init.code;
    this.request = init.request;
  }
}

export class ValidationError extends ShoalError {}
export class AuthError extends ShoalError {}
/** A file operation the sandbox's filesystem refused (403 `permission_denied`: `EACCES`, `EPERM`, `EROFS`). */
export class PermissionDeniedError extends ShoalError {}
export class NotFoundError extends ShoalError {}
export class ConflictError extends ShoalError {}
export class UnavailableError extends ShoalError {}
export class ConnectionError extends ShoalError {}
export class TimeoutError extends ShoalError {}
export class ConfigError extends ShoalError {}

/** The error for an HTTP error answer. */
export function errorForStatus(init: ShoalErrorInit): ShoalError {
  switch (init.status) {
    case 400:
    case 415:
    case 422:
      return new ValidationError(init);
    case 401:
      return new AuthError(init);
    case 403:
      return init.code === "permission_denied" ? new PermissionDeniedError(init) : new AuthError(init);
    case 404:
      return new NotFoundError(init);
    case 409:
      return new ConflictError(init);
    case 503:
      return new UnavailableError(init);
    default:
      return new ShoalError(init);
  }
}
