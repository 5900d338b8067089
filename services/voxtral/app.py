"""``voxmesh serve voxtral``: the engine picked from the settings, behind the servicer."""

from __future__ import annotations

import grpc

from voxmesh.gpu_driver import check_driver_for_engine
from voxmesh.model_source import MODEL_ENGINES
from voxmesh.server import ServiceSpec
from voxmesh.services.voxtral.engine import create_engine
from voxmesh.services.voxtral.servicer import VoxtralServicer
from voxmesh.services.voxtral.settings import VoxtralSettings
from voxmesh.v1 import voxtral_pb2, voxtral_pb2_grpc


def build_spec(settings: VoxtralSettings) -> ServiceSpec:
    check_driver_for_engine(settings.engine, settings.device)
    engine = create_engine(settings)
    servicer = VoxtralServicer(engine, settings)

    def register(server: grpc.aio.Server) -> None:
        voxtral_pb2_grpc.add_VoxtralServicer_to_server(servicer, server)

    return ServiceSpec(
        slots=servicer.slots,
        name="voxtral",
        service_names=[voxtral_pb2.DESCRIPTOR.services_by_name["Voxtral"].full_name],
        register=register,
        startup=engine.start,
        shutdown=engine.close,
        # Named in the one line that says a model could not be loaded.
        models={"--model": settings.model, "--realtime-model": settings.realtime_model}
        if settings.engine in MODEL_ENGINES
        else {},
    )
