/** The admin routes' bearer token (the ADMIN_TOKEN secret). */
import { createMiddleware } from "hono/factory";
import { EpicacheError, constantTimeEqual } from "@epicache/shared";
import type { AppEnv } from "../env";
import { bearerToken } from "./api-key";

/** Middleware: 401 `unauthorized` unless `Authorization: Bearer <ADMIN_TOKEN>`, compared in constant time. */
export const requireAdmin = createMiddleware<AppEnv>(async (c, next) => {
  const token = bearerToken(c.req.header("authorization"));
  if (token === null || !constantTimeEqual(token, c.var.config.adminToken))
    throw new EpicacheError("unauthorized", "this route needs the admin token");
  await next();
});
