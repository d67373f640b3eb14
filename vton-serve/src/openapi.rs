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
                "404" => "No such route",
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
            assert!(
                op["responses"]["200"].is_object(),
                "{method} {path}: no 200"
            );
        }
        assert_eq!(
            paths.len(),
            crate::ROUTES.len(),
            "the spec describes a route that is not served"
        );
    }
}
