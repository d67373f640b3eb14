//! The OpenAPI 3.0 description of every route, written by hand; a test checks that each
//! route the router serves ([`crate::ROUTES`]) is described here with its methods.

use serde_json::{json, Value};

use crate::error::ApiError;

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

/// The spec, with the server's version.
pub fn spec() -> Value {
    let errors = |codes: &[&str]| -> Value {
        let mut m = serde_json::Map::new();
        for c in codes {
            let d = match *c {
                "400" => "Bad input: undecodable image (invalid_image), missing field (missing_field, named), bad options JSON (invalid_options), unusable input (invalid_input)",
                "401" => "No valid `Authorization: Bearer` key (when the server has --api-key-file)",
                "404" => "No such route (not_found), job, file or result (unknown_id), or no --data-dir (batch_disabled)",
                "409" => "Not in a state for this: a result not done yet, a finished job (conflict)",
                "413" => "Body over --max-body (body_too_large) or an image over --max-pixels (too_many_pixels), refused from its header",
                "415" => "Not multipart/form-data",
                "429" => "Queue full; see Retry-After",
                "500" => "Internal error",
                "503" => "Model still loading (model_loading) or shutting down",
                "504" => "Past --timeout",
                _ => "Error",
            };
            m.insert(c.to_string(), error_response(d));
        }
        Value::Object(m)
    };
    let mut tryon_responses = errors(&["400", "401", "413", "415", "429", "500", "503", "504"]);
    tryon_responses["200"] = json!({
        "description": "The try-on result: JSON with the image in base64, or the bare image when Accept asks for image/png or image/jpeg",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/TryOnResult"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}}
        }
    });
    let mut upload_responses = errors(&["400", "401", "404", "413", "415", "500"]);
    upload_responses["201"] = json!({"description": "Stored", "content": {"application/json": {"schema": {
        "type": "object", "required": ["file_id", "size"],
        "properties": {"file_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"}, "size": {"type": "integer"}}
    }}}});
    let mut batch_responses = errors(&["400", "401", "404", "413", "415", "500"]);
    batch_responses["202"] = json!({"description": "Job created (Location: /api/v1/jobs/{id})", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobSummary"}}}});
    let id_param =
        json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}});
    let mut job_responses = errors(&["401", "404", "500"]);
    job_responses["200"] = json!({"description": "The job with every pair", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}});
    let mut cancel_responses = errors(&["401", "404", "409", "500"]);
    cancel_responses["200"] = json!({"description": "Cancelled: pairs not started will not run", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobSummary"}}}});
    let mut result_responses = errors(&["401", "404", "409", "500"]);
    result_responses["200"] = json!({"description": "The result image", "content": {
        "image/png": {"schema": {"type": "string", "format": "binary"}},
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}}
    }});
    let input_ref = |d: &str| json!({"type": "string", "description": format!("{d}: a file_id from POST /api/v1/files or a path relative to --data-dir (never outside it)")});
    let image_field = |d: &str| json!({"type": "string", "format": "binary", "description": d});
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "vton",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Virtual try-on server (`vton serve`). Errors are {\"status\": \"error\", \"error\": {\"code\", \"message\"}}."
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["status", "error"],
                    "properties": {
                        "status": {"type": "string", "enum": ["error"]},
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string", "enum": ApiError::CODES},
                                "message": {"type": "string"}
                            }
                        }
                    }
                },
                "Health": {
                    "type": "object",
                    "required": ["status", "model_loaded", "gpu_available", "version", "method"],
                    "properties": {
                        "status": {"type": "string", "enum": ["healthy"]},
                        "model_loaded": {"type": "boolean"},
                        "gpu_available": {"type": "boolean"},
                        "version": {"type": "string"},
                        "method": {"type": "string"}
                    }
                },
                "Options": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "output_format": {"type": "string", "enum": ["png", "jpeg"], "default": "png"},
                        "quality": {"type": "integer", "minimum": 1, "maximum": 100, "default": 90},
                        "return_mask": {"type": "boolean", "default": false},
                        "steps": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
                        "guidance": {"type": "number", "default": 2.5},
                        "seed": {"type": "integer", "minimum": 0, "default": 0},
                        "category": {"type": "string", "enum": ["upper_body", "lower_body", "dresses"], "default": "upper_body"}
                    }
                },
                "JobSummary": {
                    "type": "object",
                    "required": ["job_id", "status", "total", "completed"],
                    "properties": {
                        "job_id": {"type": "string"},
                        "status": {"type": "string", "enum": crate::store::JOB_STATES},
                        "total": {"type": "integer"},
                        "completed": {"type": "integer"},
                        "failed": {"type": "integer"},
                        "pending": {"type": "integer"},
                        "running": {"type": "integer"},
                        "cancelled": {"type": "integer"},
                        "created": {"type": "number", "description": "Unix time, seconds"}
                    }
                },
                "Job": {
                    "allOf": [{"$ref": "#/components/schemas/JobSummary"}, {
                        "type": "object",
                        "required": ["pairs"],
                        "properties": {
                            "options": {"$ref": "#/components/schemas/Options"},
                            "pairs": {"type": "array", "items": {
                                "type": "object",
                                "required": ["index", "state", "attempts"],
                                "properties": {
                                    "index": {"type": "integer"},
                                    "state": {"type": "string", "enum": ["pending", "running", "done", "failed", "cancelled"]},
                                    "attempts": {"type": "integer", "description": "times the pair was started (more than 1 after a crash)"},
                                    "error": {"nullable": true, "type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
                                    "processing_time": {"nullable": true, "type": "number"},
                                    "result": {"nullable": true, "type": "string", "description": "URL of the image when done"}
                                }
                            }}
                        }
                    }]
                },
                "BatchPair": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["person", "garment"],
                    "properties": {
                        "person": input_ref("person photo"),
                        "garment": input_ref("garment photo"),
                        "keypoints": input_ref("OpenPose JSON"),
                        "person_mask": input_ref("person mask"),
                        "garment_mask": input_ref("garment mask"),
                        "parse": input_ref("label PNG"),
                        "densepose": input_ref("HR-VITON DensePose image"),
                        "parse_agnostic": input_ref("HR-VITON parse-agnostic PNG"),
                        "agnostic": input_ref("HR-VITON agnostic image")
                    }
                },
                "TryOnResult": {
                    "type": "object",
                    "required": ["status", "result_image", "processing_time", "metadata"],
                    "properties": {
                        "status": {"type": "string", "enum": ["success"]},
                        "result_image": {"type": "string", "format": "byte"},
                        "mask": {"type": "string", "format": "byte", "description": "grey PNG, with return_mask"},
                        "processing_time": {"type": "number", "description": "seconds"},
                        "metadata": {
                            "type": "object",
                            "properties": {
                                "input_resolution": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
                                "output_resolution": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
                                "method": {"type": "string"}
                            }
                        }
                    }
                }
            }
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/health": {"get": {
                "summary": "Liveness and readiness; open without a key",
                "security": [],
                "responses": {"200": {"description": "Health", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}}}
            }},
            "/api/v1/tryon": {"post": {
                "summary": "One try-on",
                "requestBody": {"required": true, "content": {"multipart/form-data": {"schema": {
                    "type": "object",
                    "required": ["person_image", "garment_image"],
                    "properties": {
                        "person_image": image_field("person photo, PNG or JPEG"),
                        "garment_image": image_field("garment product photo, PNG or JPEG"),
                        "person_mask": image_field("grey mask, person = white (estimated when absent)"),
                        "garment_mask": image_field("grey mask (estimated when absent)"),
                        "keypoints": {"type": "string", "description": "OpenPose JSON, BODY_25 or COCO-18 (estimated when absent)"},
                        "parse": image_field("LIP / VITON-HD label PNG"),
                        "densepose": image_field("HR-VITON: DensePose image (required by hrviton)"),
                        "parse_agnostic": image_field("HR-VITON: parse-agnostic label PNG"),
                        "agnostic": image_field("HR-VITON: agnostic person image"),
                        "options": {"type": "string", "description": "JSON, see the Options schema"}
                    }
                }}}},
                "responses": tryon_responses
            }},
            "/api/v1/files": {"post": {
                "summary": "Upload one input file for batch jobs",
                "requestBody": {"required": true, "content": {"multipart/form-data": {"schema": {
                    "type": "object", "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}}
                }}}},
                "responses": upload_responses
            }},
            "/api/v1/batch": {"post": {
                "summary": "Create a batch job: pairs of inputs, run in the background, durable across restarts",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "additionalProperties": false, "required": ["pairs"],
                    "properties": {
                        "pairs": {"type": "array", "minItems": 1, "maxItems": crate::store::MAX_PAIRS, "items": {"$ref": "#/components/schemas/BatchPair"}},
                        "options": {"$ref": "#/components/schemas/Options"}
                    }
                }}}},
                "responses": batch_responses
            }},
            "/api/v1/jobs/{id}": {
                "get": {"summary": "A job's status and every pair's state", "parameters": [id_param.clone()], "responses": job_responses},
                "delete": {"summary": "Cancel a job (pairs not started do not run)", "parameters": [id_param.clone()], "responses": cancel_responses}
            },
            "/api/v1/jobs/{id}/results/{index}": {"get": {
                "summary": "The result image of a done pair",
                "parameters": [id_param, {"name": "index", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 0}}],
                "responses": result_responses
            }},
            "/api/v1/openapi.json": {"get": {
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.0", "content": {"application/json": {}}}}
            }},
            "/metrics": {"get": {
                "summary": "Prometheus metrics (text format 0.0.4)",
                "responses": {
                    "200": {"description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
                    "401": error_response("No valid key (when the server has --api-key-file)")
                }
            }}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described() {
        let s = spec();
        let paths = s["paths"].as_object().unwrap();
        for (method, path) in crate::ROUTES {
            let op = &paths
                .get(*path)
                .unwrap_or_else(|| panic!("{path} not in the spec"))[method.to_lowercase()];
            assert!(op.is_object(), "{method} {path} not in the spec");
            let ok = op["responses"].as_object().unwrap();
            assert!(
                ok.keys().any(|k| k.starts_with('2')),
                "{method} {path}: no 2xx"
            );
        }
        let described: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(
            described,
            crate::ROUTES.len(),
            "the spec describes a route that is not served"
        );
    }
}
