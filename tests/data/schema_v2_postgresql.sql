--
-- PostgreSQL database dump
--


-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: thrifty_measurements; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.thrifty_measurements (
    id integer NOT NULL,
    trial_id integer NOT NULL,
    step double precision,
    metrics text NOT NULL,
    cost_usd double precision NOT NULL,
    elapsed_s double precision NOT NULL,
    gpu_s double precision NOT NULL,
    "timestamp" double precision NOT NULL
);


--
-- Name: thrifty_measurements_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.thrifty_measurements_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: thrifty_measurements_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.thrifty_measurements_id_seq OWNED BY public.thrifty_measurements.id;


--
-- Name: thrifty_meta; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.thrifty_meta (
    key character varying(64) NOT NULL,
    value text NOT NULL
);


--
-- Name: thrifty_studies; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.thrifty_studies (
    id integer NOT NULL,
    name character varying(255) NOT NULL,
    space text NOT NULL,
    objectives text NOT NULL,
    strategy text NOT NULL,
    scheduler text NOT NULL,
    seed bigint NOT NULL,
    budget text NOT NULL,
    settings text NOT NULL,
    created_at double precision NOT NULL,
    next_number integer NOT NULL,
    n_started integer NOT NULL,
    spent_usd double precision NOT NULL,
    gpu_s double precision NOT NULL,
    n_running integer NOT NULL,
    active_s double precision NOT NULL,
    active_since double precision,
    budget_stop text,
    budget_stop_at double precision,
    n_finished integer NOT NULL
);


--
-- Name: thrifty_studies_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.thrifty_studies_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: thrifty_studies_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.thrifty_studies_id_seq OWNED BY public.thrifty_studies.id;


--
-- Name: thrifty_trials; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.thrifty_trials (
    id integer NOT NULL,
    study_id integer NOT NULL,
    number integer NOT NULL,
    state character varying(16) NOT NULL,
    params text NOT NULL,
    metrics text,
    error text,
    created_at double precision NOT NULL,
    started_at double precision,
    finished_at double precision,
    heartbeat_at double precision,
    worker_id character varying(128),
    run_tag character varying(64),
    retry_of integer,
    attempt integer NOT NULL,
    retried boolean NOT NULL,
    stop_requested boolean NOT NULL,
    cost_usd double precision NOT NULL,
    elapsed_s double precision NOT NULL,
    gpu_s double precision NOT NULL,
    resources text,
    reason text,
    finish_order integer,
    user_attrs text,
    parent integer,
    start_step double precision
);


--
-- Name: thrifty_trials_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.thrifty_trials_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: thrifty_trials_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.thrifty_trials_id_seq OWNED BY public.thrifty_trials.id;


--
-- Name: thrifty_measurements id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.thrifty_measurements ALTER COLUMN id SET DEFAULT nextval('public.thrifty_measurements_id_seq'::regclass);


--
-- Name: thrifty_studies id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.thrifty_studies ALTER COLUMN id SET DEFAULT nextval('public.thrifty_studies_id_seq'::regclass);


--
-- Name: thrifty_trials id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.thrifty_trials ALTER COLUMN id SET DEFAULT nextval('public.thrifty_trials_id_seq'::regclass);


--
-- Data for Name: thrifty_measurements; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.thrifty_measurements VALUES (1, 1, 1, '{"value":0.25}', 0.05, 0.0004191340001398203, 0, 1796320166.309739);
INSERT INTO public.thrifty_measurements VALUES (2, 1, 1, '{"value":0.5}', 0, 0, 0, 1796320166.3179321);
INSERT INTO public.thrifty_measurements VALUES (3, 2, 1, '{"value":0.125}', 0.05, 4.388599995763798e-05, 0, 1796320166.4988046);
INSERT INTO public.thrifty_measurements VALUES (4, 2, 1, '{}', 0, 0, 0, 1796320166.5186784);
INSERT INTO public.thrifty_measurements VALUES (5, 3, 1, '{"value":0.375}', 0.05, 4.094100017937308e-05, 0, 1796320166.6013148);
INSERT INTO public.thrifty_measurements VALUES (6, 3, 1, '{}', 0, 0, 0, 1796320166.6173496);
INSERT INTO public.thrifty_measurements VALUES (7, 4, 1, '{"value":0.0625}', 0.05, 0.03871576400001686, 0, 1796320166.8028767);
INSERT INTO public.thrifty_measurements VALUES (8, 4, 1, '{}', 0, 0, 0, 1796320166.8453453);
INSERT INTO public.thrifty_measurements VALUES (9, 6, 2, '{"value":0.75}', 0.05, 4.287400020075438e-05, 0, 1796320167.2827787);
INSERT INTO public.thrifty_measurements VALUES (10, 6, 2, '{}', 0, 0, 0, 1796320167.309278);
INSERT INTO public.thrifty_measurements VALUES (11, 7, 1, '{"value":0.5}', 0.05, 4.412599992065225e-05, 0, 1796320167.5256917);
INSERT INTO public.thrifty_measurements VALUES (12, 8, 1, '{"value":0.5}', 1, 4.539800011116313e-05, 0, 1796320167.689585);
INSERT INTO public.thrifty_measurements VALUES (13, 8, 1, '{}', 0, 0, 0, 1796320167.733387);


--
-- Data for Name: thrifty_meta; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.thrifty_meta VALUES ('schema_version', '2');


--
-- Data for Name: thrifty_studies; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.thrifty_studies VALUES (1, 'mixed', '{"x":{"type":"float","low":0.0,"high":1.0}}', '{"value":"max"}', '{"name":"auto"}', '{"name":"auto","reduction_factor":3.0,"min_resource":null,"metric":null,"min_complete":5,"rho_min":0.5}', 3, '{"usd":1.0}', '{"max_retries":0,"heartbeat_grace_s":60.0,"pricing":null,"resources":{},"stop_when":[],"utility":null,"artifact_root":"thrifty_artifacts","keep_checkpoints":3,"constraints":{}}', 1796320164.2613544, 8, 8, 1.3, 0, 1, 0.5208511352539062, 1796320167.4899535, 'budget: the budget of $1.00 is used up ($1.3000 spent)', 1796320167.689585, 7);


--
-- Data for Name: thrifty_trials; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.thrifty_trials VALUES (1, 1, 0, 'completed', '{"x":0.11320534627884626}', '{"value":0.5}', NULL, 1796320166.2693627, 1796320166.2693627, 1796320166.3179524, 1796320166.3179524, 'vm:25230:51b73da4', NULL, NULL, 0, false, false, 0.05, 0.0004191340001398203, 0, NULL, NULL, 1, NULL, NULL, NULL);
INSERT INTO public.thrifty_trials VALUES (2, 1, 1, 'stopped', '{"x":0.8770216107368469}', '{"value":0.125}', NULL, 1796320166.459269, 1796320166.459269, 1796320166.518694, 1796320166.518694, 'vm:25230:51b73da4', NULL, NULL, 0, false, false, 0.05, 4.388599995763798e-05, 0, NULL, 'scheduler: asha', 2, NULL, NULL, NULL);
INSERT INTO public.thrifty_trials VALUES (3, 1, 2, 'paused', '{"x":0.5995782623067498}', '{"value":0.375}', NULL, 1796320166.5768182, 1796320166.5768182, 1796320166.6173654, 1796320166.6173654, 'vm:25230:51b73da4', NULL, NULL, 0, false, false, 0.05, 4.094100017937308e-05, 0, NULL, 'scheduler: asha: paused at step 1', 3, NULL, NULL, NULL);
INSERT INTO public.thrifty_trials VALUES (4, 1, 3, 'stopped', '{"x":0.39457020349800587}', '{"value":0.0625}', NULL, 1796320166.6599917, 1796320166.6599917, 1796320166.8453603, 1796320166.8453603, 'vm:25230:51b73da4', NULL, NULL, 0, false, true, 0.05, 0.03871576400001686, 0, NULL, 'user: stop requested', 4, NULL, NULL, NULL);
INSERT INTO public.thrifty_trials VALUES (5, 1, 4, 'failed', '{"x":0.295236362144351}', NULL, 'boom', 1796320166.9873793, 1796320166.9873793, 1796320167.0293388, 1796320167.0293388, 'vm:25230:51b73da4', NULL, NULL, 0, false, false, 0, 0, 0, NULL, NULL, 5, NULL, NULL, NULL);
INSERT INTO public.thrifty_trials VALUES (6, 1, 5, 'stopped', '{"x":0.6529562055885977}', '{"value":0.75}', NULL, 1796320167.164331, 1796320167.164331, 1796320167.3092923, 1796320167.3092923, 'vm:25230:51b73da4', NULL, NULL, 0, false, false, 0.05, 4.287400020075438e-05, 0, NULL, NULL, 6, NULL, NULL, NULL);
INSERT INTO public.thrifty_trials VALUES (7, 1, 6, 'running', '{"x":0.6825348540831812}', NULL, NULL, 1796320167.4899535, 1796320167.4899535, NULL, 1796320167.5256917, 'vm:25230:51b73da4', NULL, NULL, 0, false, true, 0.05, 4.412599992065225e-05, 0, NULL, 'budget: the budget of $1.00 is used up ($1.3000 spent)', NULL, NULL, NULL, NULL);
INSERT INTO public.thrifty_trials VALUES (8, 1, 7, 'stopped', '{"x":0.6428277643632885}', '{"value":0.5}', NULL, 1796320167.6522222, 1796320167.6522222, 1796320167.733402, 1796320167.733402, 'vm:25230:51b73da4', NULL, NULL, 0, false, true, 1, 4.539800011116313e-05, 0, NULL, 'budget: the budget of $1.00 is used up ($1.3000 spent)', 7, NULL, NULL, NULL);


--
-- Name: thrifty_measurements_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.thrifty_measurements_id_seq', 13, true);


--
-- Name: thrifty_studies_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.thrifty_studies_id_seq', 1, true);


--
-- Name: thrifty_trials_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.thrifty_trials_id_seq', 8, true);


--
-- Name: thrifty_measurements thrifty_measurements_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.thrifty_measurements
    ADD CONSTRAINT thrifty_measurements_pkey PRIMARY KEY (id);


--
-- Name: thrifty_meta thrifty_meta_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.thrifty_meta
    ADD CONSTRAINT thrifty_meta_pkey PRIMARY KEY (key);


--
-- Name: thrifty_studies thrifty_studies_name_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.thrifty_studies
    ADD CONSTRAINT thrifty_studies_name_key UNIQUE (name);


--
-- Name: thrifty_studies thrifty_studies_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.thrifty_studies
    ADD CONSTRAINT thrifty_studies_pkey PRIMARY KEY (id);


--
-- Name: thrifty_trials thrifty_trials_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.thrifty_trials
    ADD CONSTRAINT thrifty_trials_pkey PRIMARY KEY (id);


--
-- Name: thrifty_trials uq_thrifty_trial_number; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.thrifty_trials
    ADD CONSTRAINT uq_thrifty_trial_number UNIQUE (study_id, number);


--
-- Name: ix_thrifty_measurements_trial_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_thrifty_measurements_trial_id ON public.thrifty_measurements USING btree (trial_id);


--
-- Name: ix_thrifty_trials_finish; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_thrifty_trials_finish ON public.thrifty_trials USING btree (study_id, finish_order);


--
-- Name: ix_thrifty_trials_run; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_thrifty_trials_run ON public.thrifty_trials USING btree (study_id, run_tag);


--
-- Name: ix_thrifty_trials_state; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_thrifty_trials_state ON public.thrifty_trials USING btree (study_id, state, number);


--
-- Name: thrifty_measurements thrifty_measurements_trial_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.thrifty_measurements
    ADD CONSTRAINT thrifty_measurements_trial_id_fkey FOREIGN KEY (trial_id) REFERENCES public.thrifty_trials(id);


--
-- Name: thrifty_trials thrifty_trials_study_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.thrifty_trials
    ADD CONSTRAINT thrifty_trials_study_id_fkey FOREIGN KEY (study_id) REFERENCES public.thrifty_studies(id);


--
-- PostgreSQL database dump complete
--


