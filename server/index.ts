// The HTTP service: build the app (tests, embedding) or run it (`server/main.ts`, `npm start`).
export { buildApp } from './app.ts';
export type { App, AppOptions } from './app.ts';
export { bearer, DEFAULT_TOKEN_TTL_SECONDS, MIN_SECRET_LENGTH, SERVER_ROLES, signToken, verifyToken } from './auth.ts';
export type { Principal } from './auth.ts';
export { ApiError, ERRORS, problem, problemType, SERVER_ERRORS } from './errors.ts';
export type { ApiErrorCode, Problem } from './errors.ts';
export { folderLoader } from './loader.ts';
