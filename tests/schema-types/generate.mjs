// Generates TypeScript types from the runbook schema with json-schema-to-typescript, as a
// downstream tool would. Usage: node generate.mjs <schema.json> <out.d.ts>
import { readFileSync, writeFileSync } from "node:fs";
import { compile } from "json-schema-to-typescript";

const [schemaPath, out] = process.argv.slice(2);
const schema = JSON.parse(readFileSync(schemaPath, "utf8"));
const ts = await compile(schema, "Runbook", {
  bannerComment: "",
  additionalProperties: false,
  strictIndexSignatures: true,
});
writeFileSync(out, ts);
