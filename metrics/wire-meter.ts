/**
 * Told the bytes of every gRPC message a process sends and receives (the serialized message, before
 * gRPC's framing and TLS): proto/metered-service.ts wraps a service's (de)serializers with one.
 */
export interface WireMeter {
  sent(bytes: number): void;
  received(bytes: number): void;
}
