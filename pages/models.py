"""Models: load one or several models (zoo, local folder, hub), see what is loaded, unload."""
import pandas as pd
import streamlit as st

from engine import zoo
from ui import layout, loaders, safe, saved_prompts, state, views
from ui.state import ModelSpec

layout.page("Models")
st.caption("Load one model, or several to compare them; the sidebar picks the one the other pages show.")

RULES = {"AttnLRP": "attnlrp", "CP-LRP": "cp-lrp"}
left, right = st.columns([3, 2], gap="large")
with right:
    st.subheader("Options")
    rule = st.radio("Attribution rule", list(RULES), horizontal=True, key="load:rule",
                    help="AttnLRP propagates relevance through attention weights too; CP-LRP treats them as constants.")
    dtype = st.selectbox("Precision", ["auto", "float32", "bfloat16", "float16"], key="load:dtype",
                         help=views.precision_help())  # md-safe: constant text
    q4 = st.checkbox("Load in 4-bit (GPU with bitsandbytes only)", key="load:4bit", help=views.FOUR_BIT_HELP)
    trust = st.checkbox("Trust remote code", value=False, key="load:trust",
                        help="Runs Python code shipped with the model. Only for models whose authors you trust.")
    if trust:
        st.warning("Remote code from the model's repository will run on this machine. It is never enabled by a link.")


def load(source: str, revision: str = "") -> None:
    """Load one model with the options on the right; on success it joins the view and becomes active."""
    if not source.strip():
        st.error("Nothing to load: fill in the field above first.")
        return
    param = ModelSpec(source.strip(), revision.strip() or None, dtype, "4bit" if q4 else None, RULES[rule]).param()
    if trust:
        state.put(state.TRUSTED, state.get(state.TRUSTED) | {param})
    if loaders.model(param) is not None:
        models = state.model_params()
        models += [] if param in models else [param]
        state.put(state.MODELS, models)
        state.put(state.ACTIVE, models.index(param))
        st.success(f"Loaded {safe.plain(ModelSpec.parse(param).label)}. It is now the active model.")


with left:
    zoo_tab, folder_tab, hub_tab = st.tabs(["Built-in zoo", "Local folder", "Hugging Face hub"])
    with zoo_tab:
        names = zoo.zoo_names()
        if names:
            default = (state.default_model() or f"zoo:{names[-1]}")[4:]
            name = st.selectbox("Zoo model", names, index=names.index(default) if default in names else 0,
                                key="load:zoo",
                                help="Tiny Qwen3 models trained on a toy benchmark, with known failures.")
            if st.button("Load zoo model", type="primary", key="load:zoo:go"):
                load(f"zoo:{name}")
        else:
            st.info("The zoo is not built on this machine (run `python -m engine.zoo.train`).")
    with folder_tab:
        folder = st.text_input("Folder with config.json and weights", key="load:folder", placeholder="/models/my-model")
        if st.button("Load folder", type="primary", key="load:folder:go"):
            load(folder)
    with hub_tab:
        hub_id = st.text_input("Hub id", key="load:hub", placeholder="Qwen/Qwen3-0.6B")
        revision = st.text_input("Revision (branch, tag or commit; optional)", key="load:rev")
        st.caption("Needs the model in the local Hugging Face cache or a network connection.")
        if st.button("Load from hub", type="primary", key="load:hub:go"):
            load(hub_id, revision)

with st.expander("Saved long prompts"):  # links carry their hash (ui.prompt_links)
    saved_prompts.saved_prompts()

st.divider()
st.subheader("Loaded")
models = state.model_params()
if not models:
    st.info("Nothing loaded yet.")
rows = []
for i, param in enumerate(models):
    info = loaders.summary(param)
    cols = st.columns([4, 1, 1], vertical_alignment="center")
    active = i == min(state.get(state.ACTIVE), len(models) - 1)
    cols[0].markdown(f"**{safe.plain(ModelSpec.parse(param).label)}**" + (" · active" if active else ""))
    cols[1].button("Show", key=f"use:{param}", disabled=active, on_click=state.put, args=(state.ACTIVE, i))
    cols[2].button("Unload", key=f"unload:{param}", on_click=loaders.unload, args=(param,))
    if info:
        rows.append({k: info[k] for k in ("label", "architecture", "layers", "dtype", "device", "memory_mb", "rule",
                                          "quantize")})
if rows:
    layout.table(pd.DataFrame(rows), "loaded_models", key="models")

