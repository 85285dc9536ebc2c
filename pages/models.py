"""Models: load one or several models (zoo, local folder, hub), see what is loaded, unload."""
import pandas as pd
import streamlit as st

from engine import zoo
from engine.model_spec import ModelSpec
from ui import layout, loaders, safe, state
from ui.sections import saved_prompts, views

layout.page("Models")
st.caption("Load one model, or several to compare them; the sidebar picks the one the other pages show.")

RULES = {"AttnLRP": "attnlrp", "CP-LRP": "cp-lrp"}
left, right = st.columns([3, 2], gap="large")
with right:
    st.subheader("Options")
    st.radio("Attribution rule", list(RULES), horizontal=True, key="load:rule",
             help="AttnLRP propagates relevance through attention weights too; CP-LRP treats them as constants.")
    st.selectbox("Precision", ["auto", "float32", "bfloat16", "float16"], key="load:dtype",
                 help=views.precision_help())  # md-safe: constant text
    st.checkbox("Load in 4-bit (GPU with bitsandbytes only)", key="load:4bit", help=views.FOUR_BIT_HELP)
    trust = st.checkbox("Trust remote code", value=False, key="load:trust",
                        help="Runs Python code shipped with the model. Only for models whose authors you trust.")
    if trust:
        st.warning("Remote code from the model's repository will run on this machine. It is never enabled by a link.")


def load(source_key: str, revision_key: str = "", prefix: str = "") -> None:
    """A Load button's callback (it runs before the page is drawn, so the sidebar lists the new model at once):
    load one model with the options on the right. It joins the loaded models; the active model, the one every page
    shows, changes only when the person picks it (or when it is the first model)."""
    ss = st.session_state
    typed = str(ss.get(source_key) or "").strip()
    source = prefix + typed if typed else ""
    if not source:
        st.error("Nothing to load: fill in the field above first.")
        return
    revision = str(ss.get(revision_key) or "").strip() if revision_key else ""
    param = ModelSpec(source, revision=revision or None, dtype=ss["load:dtype"],
                      quantize="4bit" if ss["load:4bit"] else None, rule=RULES[ss["load:rule"]]).param()
    if ss["load:trust"]:
        state.put(state.TRUSTED, state.get(state.TRUSTED) | {param})
    if loaders.model(param) is not None:
        shown = state.active_param()
        models = state.model_params()
        models += [] if param in models else [param]
        state.put(state.MODELS, models)
        state.put(state.ACTIVE, models.index(shown) if shown in models else models.index(param))
        label = ModelSpec.parse(param).title
        if shown in (None, param):
            st.success(f"Loaded {safe.plain(label)}; the pages show it.")
        else:
            st.success(f"Loaded {safe.plain(label)} for comparison. The pages still show "
                       f"{safe.plain(ModelSpec.parse(shown).title)}: press Show below (or pick it in the sidebar) "
                       "to switch.")


with left:
    zoo_tab, folder_tab, hub_tab = st.tabs(["Built-in zoo", "Local folder", "Hugging Face hub"])
    with zoo_tab:
        names = zoo.zoo_names()
        if names:
            default = (state.default_model() or f"zoo:{names[-1]}")[4:]
            st.selectbox("Zoo model", names, index=names.index(default) if default in names else 0,
                         key="load:zoo", help="Tiny Qwen3 models trained on a toy benchmark, with known failures.")
            st.button("Load zoo model", type="primary", key="load:zoo:go", on_click=load,
                      args=("load:zoo", "", "zoo:"))
        else:
            st.info("The zoo is not built on this machine (run `python -m engine.zoo.train`).")
    with folder_tab:
        st.text_input("Folder with config.json and weights", key="load:folder", placeholder="/models/my-model")
        st.button("Load folder", type="primary", key="load:folder:go", on_click=load, args=("load:folder",))
    with hub_tab:
        st.text_input("Hub id", key="load:hub", placeholder="Qwen/Qwen3-0.6B")
        st.text_input("Revision (branch, tag or commit; optional)", key="load:rev")
        st.caption("Needs the model in the local Hugging Face cache or a network connection.")
        st.button("Load from hub", type="primary", key="load:hub:go", on_click=load, args=("load:hub", "load:rev"))

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
    cols[0].markdown(f"**{safe.plain(ModelSpec.parse(param).title)}**" + (" · active" if active else ""))
    cols[1].button("Show", key=f"use:{param}", disabled=active, on_click=state.put, args=(state.ACTIVE, i))
    cols[2].button("Unload", key=f"unload:{param}", on_click=loaders.unload, args=(param,))
    if info:
        rows.append({k: info[k] for k in ("label", "architecture", "layers", "dtype", "device", "memory_mb", "rule",
                                          "quantize")})
if rows:
    layout.table(pd.DataFrame(rows), "loaded_models", key="models")

