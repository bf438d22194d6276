// Talking to the service's API from the page: relative URLs (so a path prefix in front
// of the service is kept), the admin token from sessionStorage in the Authorization
// header only, and 401/403 turned into AuthNeeded so the page can ask for the token.

export const TOKEN_KEY = "catalog-refresher.admin-token";

export class AuthNeeded extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

export async function problemDetail(response) {
  try {
    const body = await response.json();
    return String(body.detail || body.title || response.statusText);
  } catch {
    return response.statusText || "no details";
  }
}

export async function call(path, init = {}) {
  const headers = new Headers(init.headers);
  headers.set("Accept", "application/json");
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.set("Authorization", `Bearer ${token}`);
  const response = await fetch(path, { ...init, headers, cache: "no-store" });
  if (response.status === 401 || response.status === 403) {
    throw new AuthNeeded(response.status, await problemDetail(response));
  }
  return response;
}

// The JSON body; `alsoOk` lists error statuses whose body is still the answer
// (/health is 503 with a full report when Unhealthy).
export async function getJson(path, alsoOk = []) {
  const response = await call(path);
  if (!response.ok && !alsoOk.includes(response.status)) {
    const detail = await problemDetail(response);
    throw new ApiError(`${path} answered ${response.status}: ${detail}`, response.status);
  }
  return response.json();
}

// A POST whose problem answers become ApiError with the server's detail.
export async function postJson(path) {
  const response = await call(path, { method: "POST" });
  if (!response.ok) {
    throw new ApiError(await problemDetail(response), response.status);
  }
  return response.json();
}
